/**
 * The orderings a run trains besides the paper's ascending one (`evaluation.controls`), all from the same start and
 * judged against the same One-off baseline:
 * - `random`, the paper's control: every staged row pooled, shuffled with a fixed seed, and cut into stages of the
 *   SAME sizes as the real stages, so only the difficulty order differs;
 * - `descending`: the real stages, hardest first (no new data; the workflow reorders them).
 */
import { allowedLocation, openObject, openStore } from '../../store';
import type { ActivityDeps } from '../deps';
import { hashInputs } from '../artifacts/hashing';
import { readJsonl, toJsonl } from '../artifacts/jsonl';
import { controlKeys } from '../artifacts/run-keys';
import { runStep } from '../artifacts/step';
import type { StageSplit, StepRef } from '../types';
import { seededOrder } from './segment-stages';

export type ControlOrdering = 'random' | 'descending';

export interface RandomControlInput extends StepRef {
  /** The real stages, in training order: their sizes are kept. */
  stages: Array<Pick<StageSplit, 'stage' | 'rows'>>;
  /** Every staged row (the One-off data). */
  pool: { uri: string; sha256: string };
  seed: number;
}

/** Rows of `pool`, shuffled with `seed`, cut into consecutive chunks of `sizes`. */
export function randomStages<T extends { id: string }>(pool: T[], sizes: number[], seed: number): T[][] {
  const shuffled = seededOrder(pool, `${seed}:control-random`);
  const stages: T[][] = [];
  let start = 0;
  for (const size of sizes) {
    stages.push(shuffled.slice(start, start + size));
    start += size;
  }
  return stages;
}

/** The stages a control trains, in training order, each named by its position (1 = trained first). */
export const descendingStages = <T>(stages: readonly T[]): T[] => [...stages].reverse();

export async function segmentRandomControl(deps: ActivityDeps, input: RandomControlInput): Promise<StageSplit[]> {
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const keys = controlKeys(input.runId, 'random');
  const sizes = input.stages.map((s) => s.rows);
  const inputsHash = hashInputs({ pool: input.pool.sha256, sizes, seed: input.seed });
  return runStep(
    store,
    { runId: input.runId, step: 'controls/random', key: keys.manifest, inputsHash },
    async (out) => {
      const { store: poolStore, key } = openObject(input.pool.uri, deps.env);
      const pool = await readJsonl<{ id: string; score?: number }>(poolStore, key);
      const stages: StageSplit[] = [];
      for (const [index, rows] of randomStages(pool, sizes, input.seed).entries()) {
        const stage = index + 1;
        const { sha256 } = await out.put(keys.stage(stage), toJsonl(rows));
        stages.push({
          stage,
          uri: store.uriFor(keys.stage(stage)),
          rows: rows.length,
          minScore: null,
          maxScore: null,
          sha256,
        });
      }
      return stages;
    },
  );
}
