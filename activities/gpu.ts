import type { ActivityDeps } from './deps';
import { generateAnswers } from './generate/generate-answers';
import { serveCommandFrom } from './generate/serving-process';
import { scoreIfd } from './score/score-ifd';
import { activityOf } from './heartbeat';
import { checkModel, type CheckModelInput } from './python/check-model';
import { trainStage } from './train/train-stage';

/** Activities of the GPU worker: each runs the Python trainer as a child process. */
export const createGpuActivities = (deps: ActivityDeps) => {
  const act = activityOf(deps);
  return {
    trainStage: act(trainStage),
    generateAnswers: act(generateAnswers),
    /** `scorer.kind: "ifd"` (or `scorer.compareWith.kind`): Instruction-Following Difficulty from the base model. */
    scoreIfd: act(scoreIfd),
    /** Cheap: proves a GPU worker polls the run's queue and that the trainer accepts the model and its tokenizer. */
    checkModel: act(
      async (d, input: CheckModelInput) => {
        // Found out before the run trains for hours, not when it comes to generate.
        if (input.serving) serveCommandFrom(d.env);
        return checkModel(d, input);
      },
      () => ({ step: 'check-model' }),
    ),
  };
};
