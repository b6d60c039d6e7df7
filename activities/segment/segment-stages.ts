import { allowedLocation, openObject, openStore } from '../../store';
import type { ActivityDeps } from '../deps';
import { InvalidDataError } from '../../common/failures';
import { hashInputs, sha256 } from '../artifacts/hashing';
import { readJsonl, streamJsonl, toJsonl } from '../artifacts/jsonl';
import { segmentKeys } from '../artifacts/run-keys';
import { runStep, type StepOutputs } from '../artifacts/step';
import type { ScoreRow } from '../score/score-difficulty';
import type { SegmentInput, SegmentResult, StageSplit } from '../types';

interface Row {
  id: string;
  instruction: string;
  input: string;
  output: string;
}

/** A fixed-seed shuffle that does not depend on row order or on any RNG implementation: sort by a keyed hash. */
export const seededOrder = <T extends { id: string }>(rows: T[], salt: string): T[] =>
  rows
    .map((r) => ({ r, k: sha256(`${salt}:${r.id}`) }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
    .map(({ r }) => r);

/** Cut points that put about the same number of rows in each stage; equal scores always share a stage. */
export function quantileThresholds(scores: number[], count: number): number[] {
  const sorted = [...scores].sort((a, b) => a - b);
  return Array.from({ length: count - 1 }, (_, k) => sorted[Math.floor(((k + 1) * sorted.length) / count)]);
}

/** Stage k (1-based) holds thresholds[k-2] <= score < thresholds[k-1]: the paper's "stage 3 = score >= 3.5". */
export const stageOf = (score: number, thresholds: number[]): number => 1 + thresholds.filter((t) => score >= t).length;

/**
 * Splits the scored rows into stages of increasing difficulty, shuffles each stage once with a fixed seed (the paper
 * does not reshuffle per epoch), and writes the One-off baseline's data: every staged row, shuffled.
 */
export async function segmentStages(deps: ActivityDeps, input: SegmentInput): Promise<SegmentResult> {
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const inputsHash = hashInputs({
    scores: input.score.sha256,
    stages: input.stages,
    heldout: [input.heldoutFraction, input.heldoutMax],
  });
  const spec = { runId: input.runId, step: 'segment', key: segmentKeys(input.runId).manifest, inputsHash };
  return runStep(store, spec, (out) => segment(deps, input, out));
}

async function segment(deps: ActivityDeps, input: SegmentInput, out: StepOutputs): Promise<SegmentResult> {
  const { store } = out;
  const keys = segmentKeys(input.runId);
  // Read line by line: the dataset and its scores are the largest files a run keeps.
  const open = (uri: string) => openObject(uri, deps.env);
  const dataset = open(input.score.datasetUri);
  const rows = await readJsonl<Row>(dataset.store, dataset.key);
  const scoresFile = open(input.score.scoresUri);
  const scores = new Map<string, number | null>();
  for await (const s of streamJsonl<ScoreRow>(scoresFile.store, scoresFile.key)) scores.set(s.id, s.score);
  const { count, seed } = input.stages;
  const heldoutN = Math.min(input.heldoutMax, Math.floor(rows.length * input.heldoutFraction));
  const heldout = seededOrder(rows, `${seed}:heldout`).slice(0, heldoutN);
  const heldoutIds = new Set(heldout.map((r) => r.id));
  const training = rows.filter((r) => !heldoutIds.has(r.id));
  const scored = training.filter((r) => typeof scores.get(r.id) === 'number');
  const unscored = training.length - scored.length;
  if (scored.length === 0) throw new InvalidDataError('no scored training rows to segment', { field: 'dataset' });

  const rule = input.stages.rule;
  const thresholds =
    rule === 'quantiles'
      ? quantileThresholds(
          scored.map((r) => scores.get(r.id)!),
          count,
        )
      : rule === 'random'
        ? []
        : input.stages.thresholds;
  const byStage: Row[][] = Array.from({ length: count }, () => []);
  if (rule === 'random') {
    // The paper's control: stages of randomly mixed difficulty, equal in size, trained the same way.
    seededOrder(scored, `${seed}:random-stages`).forEach((r, i) =>
      byStage[Math.floor((i * count) / scored.length)].push(r),
    );
  } else {
    for (const r of scored) byStage[stageOf(scores.get(r.id)!, thresholds) - 1].push(r);
  }

  const write = async (key: string, data: Row[] | object) =>
    (await out.put(key, Array.isArray(data) ? toJsonl(data) : JSON.stringify(data, null, 2))).sha256;

  const stages: StageSplit[] = [];
  for (let k = 1; k <= count; k++) {
    const stageRows = seededOrder(byStage[k - 1], `${seed}:stage-${k}`);
    if (stageRows.length === 0 && !input.stages.allowEmpty) {
      const lo = k === 1 ? '-inf' : thresholds[k - 2];
      const hi = k === count ? '+inf' : thresholds[k - 1];
      throw new InvalidDataError(
        `stage ${k} of ${count} is empty: no row scored in [${lo}, ${hi}) (thresholds ${JSON.stringify(thresholds)}). ` +
          'Change input.stages.thresholds, use input.stages.rule "quantiles", or set input.stages.allowEmpty',
        { field: 'input.stages' },
      );
    }
    const s = stageRows.map((r) => scores.get(r.id)!);
    const key = keys.stage(k);
    const digest = await write(key, stageRows);
    stages.push({
      stage: k,
      uri: store.uriFor(key),
      rows: stageRows.length,
      minScore: s.length ? Math.min(...s) : null,
      maxScore: s.length ? Math.max(...s) : null,
      sha256: digest,
    });
  }
  const oneOffRows = seededOrder(scored, `${seed}:one-off`);
  const oneOffSha = await write(keys.oneOff, oneOffRows);
  let heldoutRef: SegmentResult['heldout'];
  if (heldout.length) {
    await write(keys.heldout, heldout);
    heldoutRef = { uri: store.uriFor(keys.heldout), rows: heldout.length };
  }

  const result: SegmentResult = {
    stages,
    oneOff: { uri: store.uriFor(keys.oneOff), rows: oneOffRows.length, sha256: oneOffSha },
    heldout: heldoutRef,
    thresholds,
    unscored,
    summaryUri: store.uriFor(keys.summary),
  };
  await write(keys.summary, {
    rule: input.stages.rule,
    thresholds,
    stages: stages.map(({ stage, rows: n, minScore, maxScore }) => ({ stage, rows: n, minScore, maxScore })),
    oneOff: oneOffRows.length,
    heldout: heldout.length,
    unscored,
  });
  return result;
}
