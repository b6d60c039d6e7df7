import type { ActivityDeps } from './deps';
import { withDataErrorsAsFailures } from './failures';
import { generateAnswers } from './generate/generate-answers';
import { trainStage } from './train/train-stage';
import type { GenerateInput, TrainInput } from './types';

/** Activities of the GPU worker: each runs the Python trainer as a child process. */
export const createGpuActivities = (deps: ActivityDeps) => ({
  trainStage: (input: TrainInput) => withDataErrorsAsFailures(() => trainStage(deps, input)),
  generateAnswers: (input: GenerateInput) => withDataErrorsAsFailures(() => generateAnswers(deps, input)),
});
