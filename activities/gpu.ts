import type { ActivityDeps } from './deps';
import { withTypedFailures } from '../common/failures';
import { generateAnswers } from './generate/generate-answers';
import { trainStage } from './train/train-stage';
import type { GenerateInput, TrainInput } from './types';

/** Activities of the GPU worker: each runs the Python trainer as a child process. */
export const createGpuActivities = (deps: ActivityDeps) => ({
  trainStage: (input: TrainInput) => withTypedFailures(() => trainStage(deps, input)),
  generateAnswers: (input: GenerateInput) => withTypedFailures(() => generateAnswers(deps, input)),
});
