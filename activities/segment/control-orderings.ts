import { join } from 'node:path';
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
import { controlKeys } from '../artifacts/run-keys';
import { runStep } from '../artifacts/step';
import { withLongerLines, withRows } from '../rows/engine';
import { loadDataset, markStages, putOrdered, SEEDED_KEY } from './segment-stages';
import type { StageSplit, StepRef } from '../types';

export interface RandomControlInput extends StepRef {
  /** The real stages, in training order: their sizes are kept. */
  stages: Array<Pick<StageSplit, 'stage' | 'rows'>>;
  /** Every staged row (the One-off data). */
  pool: { uri: string; sha256: string };
  seed: number;
}

export async function segmentRandomControl(deps: ActivityDeps, input: RandomControlInput): Promise<StageSplit[]> {
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const keys = controlKeys(input.runId, 'random');
  const sizes = input.stages.map((s) => s.rows);
  const inputsHash = hashInputs({ pool: input.pool.sha256, sizes, seed: input.seed });
  const spec = { runId: input.runId, step: 'controls/random', key: keys.manifest, inputsHash };
  return runStep(store, spec, (out) =>
    withRows(deps, async (rows, dir) => {
      const poolPath = join(dir, 'pool.jsonl');
      const { store: poolStore, key } = openObject(input.pool.uri, deps.env);
      await poolStore.getFile(key, poolPath);
      await withLongerLines((maxLine) => loadDataset(rows, poolPath, maxLine));
      // The pool's rows in seeded order, cut into consecutive stages of `sizes` (rows past the last are left out).
      const salt = `${input.seed}:control-random`;
      let end = 0;
      const stageOf = sizes.map((size, i) => `WHEN r <= ${(end += size)} THEN ${i + 1}`).join(' ');
      await rows.run(
        `CREATE TABLE staged AS SELECT pos, CASE ${stageOf} END AS stage
         FROM (SELECT pos, row_number() OVER (ORDER BY ${SEEDED_KEY}, pos) AS r FROM ds)`,
        { salt },
      );
      await markStages(rows);
      const stages: StageSplit[] = [];
      for (let stage = 1; stage <= sizes.length; stage++) {
        const put = await putOrdered(out, keys.stage(stage), rows, `stage = ${stage}`, salt, join(dir, 'stage.jsonl'));
        stages.push({ stage, uri: put.uri, rows: put.rows, minScore: null, maxScore: null, sha256: put.sha256 });
      }
      return stages;
    }),
  );
}
