import type { TrainInput, TrainResult } from '../activities/types';
import type { StepActivities } from './step-activities';

/**
 * Every training of a run goes through here: the stages, the One-off baseline and the control orderings. The
 * activity is named for the Web UI and `pift status` by the training's name ('stage-2', 'one-off', 'random-stage-1').
 */
export function trainStage(acts: Pick<StepActivities, 'gpuAs'>, name: string, input: TrainInput): Promise<TrainResult> {
  return acts.gpuAs(name).trainStage(input);
}
