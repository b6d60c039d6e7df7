import { join } from 'node:path';
import { log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { allowedLocation, openStore, type ObjectStore } from '../../store';
import { storedRow, type DatasetRow } from '../datasets/rows';
import type { ActivityDeps } from '../deps';
import { hashInputs } from '../artifacts/hashing';
import { rowsPerPart } from '../artifacts/parts';
import { scoreCompareKeys, scoreKeys } from '../artifacts/run-keys';
import { inScratch } from '../artifacts/scratch';
import { runStep } from '../artifacts/step';
import { askAgain, askUntilParsed, asksEndpoint, complete, endpointFor, scorerModel } from '../llm/llm-client';
import { inParts, runPool, storedPart } from '../llm/row-pool';
import { fileScorer } from '../datasets/file-scores';
import { OFFLINE_SCORER_LABEL, offlineHeuristicScore } from './offline-heuristic-scorer';
import { SCORE_CORRECTION, scoreMessagesFor, scorePromptFor, scoringEstimateFor } from './score-prompt';
import {
  cachedScore,
  sampleOf,
  scoreCacheMaterial,
  scoreRequest,
  scoreRowFromSamples,
  scoredDataset,
  scoreResult,
  storedScoreRow,
  type Asked,
} from './score-answers';
import { toJsonl } from '../artifacts/jsonl';
import { countOnClosedScale } from '../results/histogram';
import { answerCache } from '../llm/answer-cache';
import { beforeFirstRequest, SpendMeter } from '../llm/cost-estimate';
import { LineWriter } from '../rows/row-file';
import { heartbeatEvery, whileHeartbeating } from '../heartbeat';
import type { ScoreInput, ScoreResult, ScoreRow } from '../types';

export type Scorer = {
  label: string;
  offline: boolean;
  score: (row: DatasetRow) => Promise<ScoreRow>;
  /** Waits for the answer cache's writes (scorers without a cache have none). */
  flush?: () => Promise<void>;
  /** An online scorer's spending limit (the offline and file scorers cost nothing). */
  meter?: SpendMeter;
};

export function makeScorer(input: ScoreInput, deps: ActivityDeps, store: ObjectStore, promptSha256: string): Scorer {
  const kind = input.scorer.kind;
  if (kind === 'file') throw new Error('file scores are read by fileScorer');
  if (kind === 'ifd') throw new Error('IFD scores are computed by scoreIfd on the GPU queue');
  const endpoint = endpointFor(kind, 'input.scorer.kind', deps.env, {
    maxRetries: input.scorer.requestRetries,
    timeoutSeconds: input.scorer.timeoutSeconds,
    budget: { requestsPerMinute: input.scorer.requestsPerMinute, tokensPerMinute: input.scorer.tokensPerMinute },
    meter: new SpendMeter({ ...input.scorer, setting: 'input.scorer' }, 'scoring'),
  });
  if (!endpoint) {
    const scorer = OFFLINE_SCORER_LABEL;
    return {
      label: scorer,
      offline: true,
      score: async (row) => ({ id: row.id, score: offlineHeuristicScore(row), scorer, promptSha256 }),
    };
  }
  const source = scorerModel(deps.env, input.scorer.model);
  const samples = input.scorer.samples ?? 1;
  const cached = input.scorer.cache ?? true;
  const cache = answerCache(store, 'score', cached);
  return {
    label: source.model,
    offline: false,
    meter: endpoint.meter,
    score: async (row) => {
      // The row's prompt is built once: for every sample and re-ask, and for the cache key.
      const messages = scoreMessagesFor(row);
      const request = scoreRequest(source.model, row, messages);
      // The key hashes the row's whole prompt: not worth it on every row when the cache is off.
      const material = cached ? scoreCacheMaterial(source.model, promptSha256, samples, row, messages) : undefined;
      const hit = material && (await cache.get<Omit<ScoreRow, 'id'>>(material));
      if (hit) return { id: row.id, ...hit };
      // `samples` asks, combined as the Batch API's answers are.
      const ask = async (previous?: Asked) => {
        // Transport faults (429, 5xx, timeouts, outages) are waited out inside `complete`: this is an answer.
        return sampleOf(await complete(endpoint, askAgain(request, previous?.raw, SCORE_CORRECTION), source.setting));
      };
      // A rejected request (no answer) is not asked again.
      const answered = (sample: Asked) => sample.score !== null || sample.raw === undefined;
      const asked = await Promise.all(
        Array.from(
          { length: Math.max(1, samples) },
          async () => (await askUntilParsed(ask, answered, input.scorer.parseRetries)).reply,
        ),
      );
      const scored = scoreRowFromSamples(row.id, source.model, promptSha256, asked);
      if (material && scored.score !== null) cache.put(material, cachedScore(scored));
      return scored;
    },
    flush: () => cache.flush(),
  };
}

/**
 * The first read of the dataset: every row checked and counted, its estimate added up, its stored form written to
 * dataset.jsonl in `work` (`datasetPath`, the run's copy); then the scorer and the inputs hash its scores are keyed by.
 */
export async function prepareScoring(deps: ActivityDeps, input: ScoreInput, work: string) {
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  // The second scorer of scorer.compareWith writes its own files, beside the ones segmentation reads.
  const keys = input.output === 'compare' ? scoreCompareKeys(input.runId) : scoreKeys(input.runId);
  const dataset = scoredDataset(deps, input);
  const samples = input.scorer.samples ?? 1;
  const datasetPath = join(work, 'dataset.jsonl');
  const estimate = asksEndpoint(input.scorer.kind, deps.env) ? scoringEstimateFor(input) : undefined;
  let rows = 0;
  // Reading a large dataset from the store can outlast the heartbeat timeout before the step's own heartbeats start.
  await whileHeartbeating(
    () => ({ checked: rows }),
    async () => {
      const writer = await LineWriter.create(datasetPath);
      try {
        for await (const row of dataset) {
          await writer.text(JSON.stringify(storedRow(row)));
          estimate?.add(scoreMessagesFor(row));
          rows += 1;
        }
      } finally {
        await writer.close();
      }
    },
  );
  const read = { rows, sha256: dataset.sha256! };
  const prompt = scorePromptFor(dataset.layout);
  const scorer: Scorer =
    input.scorer.kind === 'file'
      ? await fileScorer(deps, input, { sha256: read.sha256, source: dataset.source })
      : makeScorer(input, deps, store, prompt.sha256);
  const inputsHash = hashInputs({
    // The sha256 of the file's text, as a whole-file read hashed it, so earlier runs' manifests still match.
    dataset: read.sha256,
    scorer: scorer.label,
    prompt: prompt.sha256,
    parseRetries: input.scorer.parseRetries,
    // Only when given: the same file read through another mapping is another dataset.
    ...(input.datasetColumns ? { columns: input.datasetColumns } : {}),
    // Only when set, so that the inputs of every run scored before samples existed hash as they did.
    ...(samples > 1 ? { samples: input.scorer.samples } : {}),
  });
  // Who scored and with which prompt, as the step's result (and a plan of shards) records them.
  const scoredBy = { scorer: scorer.label, offline: scorer.offline, promptSha256: prompt.sha256 };
  // The step's cost estimate, checked against its limits before the first request; undefined for free scorers.
  const checkedEstimate = () =>
    scorer.meter && beforeFirstRequest(estimate!.result(), { ...input.scorer, setting: 'input.scorer' }, 'scoring');
  return { store, keys, dataset, read, datasetPath, prompt, scorer, scoredBy, inputsHash, checkedEstimate };
}

/** What is kept of score lines once they are written: counts, and where the failures are. */
export interface ScoreTally {
  rows: number;
  failed: number;
  histogram: Record<string, number>;
  /** The first row left without a score, for the message. */
  firstFailure?: { id: string; raw?: string };
  /** Parts (numbered over the whole dataset) holding a row without a score. */
  failedParts: number[];
}

/**
 * Scores `rows` in parts of `partRows` numbered from `firstPart`, through one pool, and writes each score line to
 * `scoresPath` as the pool hands parts on, in order. Parts an earlier attempt stored are read back, not asked again.
 */
export async function scoreIntoFile(o: {
  rows: AsyncIterable<DatasetRow>;
  /** How many rows `rows` holds (as a first read counted them): a stored part is used when it has all of its rows. */
  rowCount: number;
  partRows: number;
  firstPart: number;
  partKey: (index: number) => string;
  store: ObjectStore;
  scorer: Scorer;
  concurrency: number;
  scoresPath: string;
  /** Heartbeat details: `scored` and `answered` are counted here. */
  progress: { scored: number; answered: number };
}): Promise<ScoreTally> {
  const heartbeat = heartbeatEvery();
  const { store, partKey, progress } = o;
  const tally: ScoreTally = { rows: 0, failed: 0, histogram: {}, failedParts: [] };
  const scoresFile = await LineWriter.create(o.scoresPath);
  try {
    // Parts only spare a retry work: scores.jsonl holds every row, so they are not outputs of the step.
    await runPool<DatasetRow, ScoreRow>({
      parts: inParts(o.rows, o.partRows, o.firstPart),
      concurrency: o.concurrency,
      load: ({ index }) =>
        storedPart<ScoreRow>(
          store,
          partKey(index),
          Math.min(o.partRows, o.rowCount - (index - o.firstPart) * o.partRows),
        ),
      work: async (row) => {
        const s = await o.scorer.score(row);
        progress.answered += 1;
        heartbeat(progress);
        return s;
      },
      save: async ({ index }, rows) => {
        await store.put(partKey(index), toJsonl(rows));
      },
      emit: async ({ index }, rows) => {
        for (const row of rows) {
          await scoresFile.text(JSON.stringify(storedScoreRow(row)));
          countOnClosedScale(tally.histogram, row.score);
          if (row.score !== null) continue;
          tally.failed += 1;
          tally.firstFailure ??= { id: row.id, raw: row.raw };
          if (tally.failedParts.at(-1) !== index) tally.failedParts.push(index);
        }
        tally.rows += rows.length;
        progress.scored += rows.length;
      },
    });
  } finally {
    await scoresFile.close();
  }
  return tally;
}

/** Fails the step when more rows than `maxFailedFraction` allows were left without a score. */
export async function refuseTooManyFailures(
  tally: Pick<ScoreTally, 'failed' | 'firstFailure' | 'failedParts'>,
  rows: number,
  maxFailedFraction: number,
  dropPart: (index: number) => Promise<void>,
): Promise<void> {
  const { failed } = tally;
  if (failed > maxFailedFraction * rows) {
    // Drop the parts holding failures so that a resumed run asks again for just those rows.
    for (const i of tally.failedParts) await dropPart(i);
    throw ApplicationFailure.nonRetryable(
      `${failed} of ${rows} difficulty answers could not be parsed (limit ${maxFailedFraction * 100}%); ` +
        `e.g. row ${tally.firstFailure!.id}: ${JSON.stringify(tally.firstFailure!.raw)}`,
      'UnparseableScores',
      { failed, rows },
    );
  }
  if (failed)
    log.warn('some difficulty answers were unparseable; those rows are left out of every stage', {
      failed,
    });
}

/**
 * Scores every instruction's difficulty on the paper's 1-5 scale. Rows are scored in parts that are committed one by
 * one; answers that stay unparseable are recorded as such and counted, never replaced.
 *
 * Memory stays bounded whatever the dataset's size: the rows are read twice, as a stream, and never held together.
 * The first read checks every row (a bad one fails the step before any paid request), counts them, adds up the cost
 * estimate and writes the run's copy of the dataset to a local file; the second feeds them to the pool part by part,
 * and the score lines go to a local file as the pool hands parts on, in order. Both files are uploaded whole, so the
 * stored bytes are those of a step that held every row.
 */
export const scoreDifficulty = (deps: ActivityDeps, input: ScoreInput): Promise<ScoreResult> =>
  inScratch(deps.workDir, 'score-', async (work) => {
    const p = await prepareScoring(deps, input, work);
    const { store, keys, dataset, read, scorer, inputsHash } = p;
    // scored: rows committed in order; answered: answers received in this attempt.
    const progress = { scored: 0, answered: 0, total: read.rows };
    const step = input.output === 'compare' ? 'score/compare' : 'score';
    return runStep(
      store,
      { runId: input.runId, step, key: keys.manifest, inputsHash },
      async (out) => {
        const estimate = p.checkedEstimate();
        if (estimate) Object.assign(progress, { estimate });
        await out.putFile(keys.dataset, p.datasetPath);
        await out.put(keys.prompt, p.prompt.template);

        const partKey = (i: number) => keys.part(inputsHash, i);
        // Rows per committed part: a retried activity rescores only the parts that were not committed.
        const partRows = await rowsPerPart(out, partKey(0), read.rows);
        const scoresPath = join(work, 'scores.jsonl');
        const tally = await scoreIntoFile({
          rows: dataset.reread(),
          rowCount: read.rows,
          partRows,
          firstPart: 0,
          partKey,
          store,
          scorer,
          concurrency: input.scorer.concurrency,
          scoresPath,
          progress,
        });
        if (dataset.sha256 !== read.sha256 || tally.rows !== read.rows) {
          // Scores of the second read's rows must not be reused under the first read's inputs hash.
          const written = Math.ceil(Math.max(tally.rows, read.rows) / partRows);
          for (let i = 0; i < written; i++) await store.delete(partKey(i));
          throw new Error(
            `${dataset.source} changed while it was being scored (it was read twice, with different contents); ` +
              'the next attempt scores it as it is then',
          );
        }
        await scorer.flush?.();
        await refuseTooManyFailures(tally, read.rows, input.scorer.maxFailedFraction, (i) => store.delete(partKey(i)));
        const { sha256 } = await out.putFile(keys.scores, scoresPath);
        const cost = estimate && { estimate, spent: scorer.meter!.total() };
        return scoreResult(store, keys, { ...tally, rows: read.rows, ...p.scoredBy, sha256, cost });
      },
      { heartbeat: () => progress },
    );
  });
