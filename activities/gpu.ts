import type { ActivityDeps } from './deps';
import { withTypedFailures } from '../common/failures';
import { generateAnswers } from './generate/generate-answers';
import { serveCommandFrom } from './generate/serving-process';
import { scoreIfd } from './score/score-ifd';
import { whileHeartbeating } from './heartbeat';
import { checkModel, type CheckModelInput } from './python/check-model';
import { trainStage } from './train/train-stage';
import type { GenerateInput, IfdScoreInput, TrainInput } from './types';

/** Activities of the GPU worker: each runs the Python trainer as a child process. */
export const createGpuActivities = (deps: ActivityDeps) => ({
  trainStage: (input: TrainInput) => withTypedFailures(() => trainStage(deps, input)),
  generateAnswers: (input: GenerateInput) => withTypedFailures(() => generateAnswers(deps, input)),
  /** `scorer.kind: "ifd"` (or `scorer.compareWith.kind`): Instruction-Following Difficulty from the base model. */
  scoreIfd: (input: IfdScoreInput) => withTypedFailures(() => scoreIfd(deps, input)),
  /** Cheap: proves a GPU worker polls the run's queue and that the trainer accepts the model and its tokenizer. */
  checkModel: (input: CheckModelInput) =>
    withTypedFailures(() =>
      whileHeartbeating(
        () => ({ step: 'check-model' }),
        async () => {
          // Found out before the run trains for hours, not when it comes to generate.
          if (input.serving) serveCommandFrom(deps.env);
          return checkModel(deps, input);
        },
      ),
    ),
});
