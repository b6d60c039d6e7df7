import { mkdir, mkdtemp, rm } from 'node:fs/promises';
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
import { runStep, type StepOutputs } from '../artifacts/step';
import { linesOf, withLongerLines, withRows, type Rows } from '../rows/engine';
import { LineWriter } from '../rows/row-file';
import type { StageSplit, StepRef } from '../types';

export type ControlOrdering = 'random' | 'descending';

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
  return runStep(
    store,
    { runId: input.runId, step: 'controls/random', key: keys.manifest, inputsHash },
    async (out) => {
      await mkdir(deps.workDir, { recursive: true });
      const dir = await mkdtemp(join(deps.workDir, 'controls-'));
      try {
        const poolPath = join(dir, 'pool.jsonl');
        const { store: poolStore, key } = openObject(input.pool.uri, deps.env);
        await poolStore.getFile(key, poolPath);
        return await withRows(deps, (rows) =>
          writeStages(
            rows,
            poolPath,
            sizes,
            input.seed,
            (k) => ({
              key: keys.stage(k),
              path: join(dir, `stage-${k}.jsonl`),
            }),
            out,
          ),
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
}

/**
 * The pool's rows in seeded order (seededOrder with `<seed>:control-random`), cut into consecutive stages of `sizes`:
 * each stage file is its rows' lines as the pool holds them.
 */
async function writeStages(
  rows: Rows,
  poolPath: string,
  sizes: number[],
  seed: number,
  place: (stage: number) => { key: string; path: string },
  out: StepOutputs,
): Promise<StageSplit[]> {
  await withLongerLines(async (maxLine) =>
    rows.run(`CREATE OR REPLACE TABLE pool AS
      SELECT pos, json_extract_string(line, '$.id') AS id, line FROM ${await linesOf(rows, poolPath, maxLine)}`),
  );
  const result = await rows.stream("SELECT line FROM pool ORDER BY sha256($salt || ':' || id), pos", {
    salt: `${seed}:control-random`,
  });
  const ordered = (async function* () {
    for await (const chunk of result.yieldRows()) for (const [line] of chunk) yield line as string;
  })();
  const stages: StageSplit[] = [];
  for (const [index, size] of sizes.entries()) {
    const stage = index + 1;
    const { key, path } = place(stage);
    const writer = await LineWriter.create(path);
    let written = 0;
    try {
      while (written < size) {
        const next = await ordered.next();
        if (next.done) break;
        await writer.text(next.value);
        written += 1;
      }
    } finally {
      await writer.close();
    }
    const { sha256 } = await out.putFile(key, path);
    stages.push({ stage, uri: out.store.uriFor(key), rows: written, minScore: null, maxScore: null, sha256 });
  }
  return stages;
}
