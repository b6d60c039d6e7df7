import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { allowedLocation, openStore } from '../../store';
import { receiveFile } from '../artifacts/hand-off';
import type { ActivityDeps } from '../deps';
import { InvalidDataError } from '../../common/failures';
import { heldoutOf } from '../../common/settings/derive';
import { hashInputs } from '../artifacts/hashing';
import { segmentKeys } from '../artifacts/run-keys';
import { runStep, type StepOutputs } from '../artifacts/step';
import type { SegmentInput, SegmentResult, StageSplit } from '../types';
import { linesOf, numberOf, withLongerLines, withRows, type Rows, type SqlValues } from '../rows/engine';
import { copyLines } from '../rows/row-file';

/**
 * Splits the scored rows into stages of increasing difficulty, shuffles each stage once with a fixed seed (the paper
 * does not reshuffle per epoch), and writes the One-off baseline's data: every staged row, shuffled.
 *
 * Memory stays within the row engine's limit whatever the dataset's size: the dataset and its scores are copied to
 * local disk and joined, split and sorted there (a seeded order is `ORDER BY sha256('<salt>:' || id)`), and each
 * stage file is its rows' lines, copied as they were written.
 */
export async function segmentStages(deps: ActivityDeps, input: SegmentInput): Promise<SegmentResult> {
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const inputsHash = hashInputs({
    scores: input.score.sha256,
    stages: input.stages,
    heldout: [input.heldoutFraction, input.heldoutMax],
  });
  const spec = { runId: input.runId, step: 'segment', key: segmentKeys(input.runId).manifest, inputsHash };
  return runStep(store, spec, (out) => withRows(deps, (rows, dir) => segment(deps, input, out, dir, rows)));
}

/** The SQL of a seeded order's key, sha256('<salt>:<id>'), for the salt in parameter `$salt`. */
export const SEEDED_KEY = "sha256($salt || ':' || id)";

/** Table `ds` (pos, id, line): the rows of a local JSONL file, pos in file order. */
export async function loadDataset(rows: Rows, path: string, maxLine: number): Promise<void> {
  await rows.run(`CREATE OR REPLACE TABLE ds AS
    SELECT pos, json_extract_string(line, '$.id') AS id, line FROM ${await linesOf(rows, path, maxLine)}`);
}

/**
 * Tables `ds` (pos, id, line: the dataset's rows, pos in file order) and `scored` (pos, id, score: every row with a
 * numeric score in its last line of scores.jsonl). JSON numbers read as the doubles JSON.parse gives.
 */
async function loadRows(rows: Rows, datasetPath: string, scoresPath: string): Promise<void> {
  await withLongerLines(async (maxLine) => {
    await loadDataset(rows, datasetPath, maxLine);
    // A row scored twice has the score of its later line.
    await rows.run(`CREATE OR REPLACE TABLE sc AS
      SELECT id, arg_max_null(score, pos) AS score FROM (
        SELECT pos, json_extract_string(line, '$.id') AS id,
          CASE WHEN json_type(line, '$.score') IN ('BIGINT', 'UBIGINT', 'DOUBLE')
            THEN CAST(json_extract(line, '$.score') AS DOUBLE) END AS score
        FROM ${await linesOf(rows, scoresPath, maxLine)})
      GROUP BY id`);
  });
  await rows.run(`CREATE TABLE scored AS SELECT pos, id, score FROM ds JOIN sc USING (id) WHERE score IS NOT NULL`);
  await rows.run('DROP TABLE sc');
}

/**
 * The held-out split: the head of the seeded order over every row (table `heldout`: pos, id), then taken out of `scored`,
 * which keeps the training rows.
 */
async function holdOut(rows: Rows, input: SegmentInput): Promise<{ total: number; heldout: number }> {
  const total = await numberOf(rows, 'SELECT count(*) FROM ds');
  const heldout = heldoutOf(total, input);
  await rows.run(`CREATE TABLE heldout AS SELECT pos, id FROM ds ORDER BY ${SEEDED_KEY}, pos LIMIT ${heldout}`, {
    salt: `${input.stages.seed}:heldout`,
  });
  await rows.run('DELETE FROM scored WHERE pos IN (SELECT pos FROM heldout)');
  return { total, heldout };
}

/**
 * Cut points that put about the same number of rows in each stage (equal scores always share a stage): the training
 * rows' score at each cut's place in ascending order.
 */
async function quantiles(rows: Rows, scoredCount: number, count: number): Promise<number[]> {
  const places = Array.from({ length: count - 1 }, (_, k) => Math.floor(((k + 1) * scoredCount) / count));
  if (places.length === 0) return [];
  const found = await rows.runAndReadAll(
    `SELECT i, score FROM (SELECT score, row_number() OVER (ORDER BY score) - 1 AS i FROM scored)
     WHERE i IN (${[...new Set(places)].join(', ')})`,
  );
  const at = new Map(found.getRows().map(([i, score]) => [Number(i), score as number]));
  return places.map((i) => at.get(i)!);
}

/**
 * Adds each training row's stage: by thresholds (stage k holds thresholds[k-2] <= score < thresholds[k-1], the
 * paper's "stage 3 = score >= 3.5"), or the paper's random control (equal, seeded stages). */
async function assignStages(rows: Rows, input: SegmentInput, thresholds: number[], scoredCount: number) {
  const { rule, count, seed } = input.stages;
  if (rule === 'random') {
    await rows.run(
      `CREATE TABLE staged AS SELECT pos, id, score,
         1 + ((row_number() OVER (ORDER BY ${SEEDED_KEY}, pos) - 1) * ${count}) // ${scoredCount} AS stage
       FROM scored`,
      { salt: `${seed}:random-stages` },
    );
    return;
  }
  const values: SqlValues = Object.fromEntries(thresholds.map((t, i) => [`t${i}`, t]));
  const above = thresholds.map((_, i) => ` + CAST(score >= $t${i} AS INTEGER)`).join('');
  await rows.run(`CREATE TABLE staged AS SELECT pos, id, score, 1${above} AS stage FROM scored`, values);
}

/** Writes the lines of the rows of `ds` that `where` selects, in seeded order for `salt`, as one output. */
export async function putOrdered(
  out: StepOutputs,
  key: string,
  rows: Rows,
  where: string,
  salt: string,
  scratch: string,
): Promise<{ uri: string; rows: number; sha256: string }> {
  // One scan and one sort, no join: a join of the rows back to their lines held every line in memory.
  const n = await copyLines(rows, `SELECT line FROM ds WHERE ${where} ORDER BY ${SEEDED_KEY}, pos`, scratch, { salt });
  const { sha256 } = await out.putFile(key, scratch);
  await rm(scratch, { force: true });
  return { uri: out.store.uriFor(key), rows: n, sha256 };
}

/** Marks each row of `ds` with its stage in table `staged` (pos, stage), as column `stage`; NULL for none. */
export async function markStages(rows: Rows): Promise<void> {
  await rows.run('ALTER TABLE ds ADD COLUMN stage INTEGER');
  await rows.run('UPDATE ds SET stage = staged.stage FROM staged WHERE ds.pos = staged.pos');
}

async function segment(
  deps: ActivityDeps,
  input: SegmentInput,
  out: StepOutputs,
  dir: string,
  rows: Rows,
): Promise<SegmentResult> {
  const keys = segmentKeys(input.runId);
  // Local copies, streamed: the dataset and its scores are the largest files a run keeps.
  const datasetPath = join(dir, 'dataset.jsonl');
  const scoresPath = join(dir, 'scores.jsonl');
  await receiveFile(input.score.datasetUri, deps.env, datasetPath, { setting: 'input.score.datasetUri' });
  // The scores are checked against the sha256 the score step recorded, so a line damaged since is never read.
  await receiveFile(input.score.scoresUri, deps.env, scoresPath, {
    sha256: input.score.sha256,
    setting: 'input.score.scoresUri',
  });
  await loadRows(rows, datasetPath, scoresPath);
  await rm(scoresPath);
  const { total, heldout } = await holdOut(rows, input);
  const scoredCount = await numberOf(rows, 'SELECT count(*) FROM scored');
  const unscored = total - heldout - scoredCount;
  if (scoredCount === 0) throw new InvalidDataError('no scored training rows to segment', { field: 'dataset' });

  const { count, seed, rule } = input.stages;
  const thresholds =
    rule === 'quantiles' ? await quantiles(rows, scoredCount, count) : rule === 'random' ? [] : input.stages.thresholds;
  await assignStages(rows, input, thresholds, scoredCount);
  const ranges = await rows.runAndReadAll('SELECT stage, min(score), max(score) FROM staged GROUP BY stage');
  const range = new Map(ranges.getRows().map(([k, lo, hi]) => [Number(k), [lo as number, hi as number] as const]));
  await markStages(rows);
  await rows.run('UPDATE ds SET stage = 0 WHERE pos IN (SELECT pos FROM heldout)'); // stage 0: held out

  const stages: StageSplit[] = [];
  const scratch = join(dir, 'out.jsonl');
  for (let k = 1; k <= count; k++) {
    if (!range.has(k) && !input.stages.allowEmpty) {
      const lo = k === 1 ? '-inf' : thresholds[k - 2];
      const hi = k === count ? '+inf' : thresholds[k - 1];
      throw new InvalidDataError(
        `stage ${k} of ${count} is empty: no row scored in [${lo}, ${hi}) (thresholds ${JSON.stringify(thresholds)}). ` +
          'Change input.stages.thresholds, use input.stages.rule "quantiles", or set input.stages.allowEmpty',
        { field: 'input.stages' },
      );
    }
    const put = await putOrdered(out, keys.stage(k), rows, `stage = ${k}`, `${seed}:stage-${k}`, scratch);
    const [minScore, maxScore]: readonly [number | null, number | null] = range.get(k) ?? [null, null];
    stages.push({ stage: k, uri: put.uri, rows: put.rows, minScore, maxScore, sha256: put.sha256 });
  }
  const oneOff = await putOrdered(out, keys.oneOff, rows, 'stage > 0', `${seed}:one-off`, scratch);
  const held = heldout ? await putOrdered(out, keys.heldout, rows, 'stage = 0', `${seed}:heldout`, scratch) : undefined;
  const summary = {
    rule,
    thresholds,
    stages: stages.map(({ stage, rows: n, minScore, maxScore }) => ({ stage, rows: n, minScore, maxScore })),
    oneOff: oneOff.rows,
    heldout,
    unscored,
  };
  await out.put(keys.summary, JSON.stringify(summary, null, 2));
  return {
    stages,
    oneOff,
    heldout: held && { uri: held.uri, rows: heldout },
    thresholds,
    unscored,
    summaryUri: out.store.uriFor(keys.summary),
  };
}
