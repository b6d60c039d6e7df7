import { log } from '@temporalio/workflow';
import { failureDetail, FailureType } from '../common/failures';

/** The steps of this run that can be run again, by run id and the name their manifests carry ('<runId>/train/stage-1'). */
export type Producers = Map<string, () => Promise<unknown>>;

/** Rounds of recomputing before a damage that keeps coming back fails the run (a store that corrupts what it keeps). */
const MAX_RECOMPUTES = 2;

/** The producer a failure names when a step found another step's committed output damaged everywhere. */
function damagedProducer(err: unknown): string | undefined {
  const producer = failureDetail(err, FailureType.CorruptArtifact, 'producer');
  return typeof producer === 'string' ? producer : undefined;
}

/**
 * Runs `step`; when it fails because an output of one of `producers` is damaged in the store and on its worker
 * (activities/artifacts/hand-off.ts), runs that producer again, which verifies its committed outputs and recomputes
 * them from its newest verified checkpoint (training is deterministic, so the bytes come back the same), then runs
 * `step` again. Damage is thus repaired within the run, without a person and without burning retries on it.
 */
export async function withRecomputedProducers<T>(producers: Producers, step: () => Promise<T>): Promise<T> {
  for (let round = 0; ; round++) {
    try {
      return await step();
    } catch (err) {
      const producer = damagedProducer(err);
      const recompute = producer === undefined ? undefined : producers.get(producer);
      if (!recompute || round >= MAX_RECOMPUTES) throw err;
      log.warn('an output of an earlier step is damaged; computing that step again', { producer });
      await recompute();
    }
  }
}
