import type { TrainInput, TrainResult } from '../activities/types';
import { withRecomputedProducers } from './recompute-producer';
import type { StepActivities } from './step-activities';

/**
 * Every training of a run goes through here: the stages, the One-off baseline and the control orderings. The
 * activity is named for the Web UI and `pift status` by the training's name ('stage-2', 'one-off', 'random-stage-1').
 * A damaged model of an earlier training (a stage's start) is recomputed by running that training again, and each
 * finished training is registered so that a later step can do the same with its model.
 */
export async function trainStage(
  acts: Pick<StepActivities, 'gpuAs' | 'producers'>,
  name: string,
  input: TrainInput,
): Promise<TrainResult> {
  const train = () => acts.gpuAs(name).trainStage(input);
  const trained = await withRecomputedProducers(acts.producers, train);
  acts.producers.set(`${input.runId}/train/${name}`, train);
  return trained;
}
