import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Context, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { allowedLocation, openStore, type ObjectStore } from '../../store';
import { readDatasetRows, type DatasetRows } from '../datasets/read-dataset';
import { storedRow, type DatasetRow } from '../datasets/rows';
import type { ActivityDeps } from '../deps';
import { hashInputs } from '../artifacts/hashing';
import { fromJsonl, toJsonl } from '../artifacts/jsonl';
import { rowsPerPart } from '../artifacts/parts';
import { scoreCompareKeys, scoreKeys } from '../artifacts/run-keys';
import { runStep } from '../artifacts/step';
import {
  asksEndpoint,
  complete,
  endpointFor,
  scorerModel,
  type LlmEndpoint,
  type ModelSource,
} from '../llm/llm-client';
import { inParts, runPool } from '../llm/row-pool';
import { fileScorer } from './file-scores';
import { OFFLINE_SCORER_LABEL, offlineHeuristicScore } from './offline-heuristic-scorer';
import { scorePromptFor } from './score-prompt';
import {
  cachedScore,
  parsedSample,
  rejectedSample,
  scoreCacheMaterial,
  scoreRequest,
  scoreRowFromSamples,
  type Asked,
} from './score-answers';
import { storedScoreRow } from './score-rows';
import { countOnClosedScale } from './histogram';
import { answerCache } from '../llm/answer-cache';
import { beforeFirstRequest, ScoringEstimate, SpendMeter } from '../llm/cost-estimate';
import { LineWriter } from '../segment/row-file';
import { whileHeartbeating } from '../heartbeat';
import type { ScoreInput, ScoreResult } from '../types';

/** One line of scores.jsonl: keyed by example id, with who scored it and with which prompt. */
export interface ScoreRow {
  id: string;
  score: number | null;
  scorer: string;
  promptSha256: string;
  /** The judge's raw answer when it could not be parsed (never replaced by a made-up score). */
  raw?: string;
  error?: string;
  /** With `scorer.samples` > 1: each sample's score (null where it stayed unparseable) and raw answer; `score` is their mean. */
  samples?: Array<number | null>;
  answers?: string[];
}

type Scorer = {
  label: string;
  offline: boolean;
  score: (row: DatasetRow) => Promise<ScoreRow>;
  /** Waits for the answer cache's writes. */
  flush: () => Promise<void>;
  /** An online scorer's spending limit (the offline and file scorers cost nothing). */
  meter?: SpendMeter;
};

function makeScorer(input: ScoreInput, deps: ActivityDeps, store: ObjectStore, promptSha256: string): Scorer {
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
    return {
      label: OFFLINE_SCORER_LABEL,
      offline: true,
      score: async (row) => ({
        id: row.id,
        score: offlineHeuristicScore(row),
        scorer: OFFLINE_SCORER_LABEL,
        promptSha256,
      }),
      flush: async () => {},
    };
  }
  const source = scorerModel(deps.env, input.scorer.model);
  const samples = input.scorer.samples ?? 1;
  const cache = answerCache(store, 'score', input.scorer.cache ?? true);
  return {
    label: source.model,
    offline: false,
    meter: endpoint.meter,
    score: async (row) => {
      const material = scoreCacheMaterial(source.model, promptSha256, samples, row);
      const cached = await cache.get<Omit<ScoreRow, 'id'>>(material);
      if (cached) return { id: row.id, ...cached };
      const scored = await askSamples(endpoint, source, row, input.scorer.parseRetries, samples, promptSha256);
      if (scored.score !== null) cache.put(material, cachedScore(scored));
      return scored;
    },
    flush: () => cache.flush(),
  };
}

/** One row's score: `samples` asks, combined as the Batch API's answers are (scoreRowFromSamples). */
async function askSamples(
  endpoint: LlmEndpoint,
  source: ModelSource,
  row: DatasetRow,
  parseRetries: number,
  samples: number,
  promptSha256: string,
): Promise<ScoreRow> {
  const asked = await Promise.all(
    Array.from({ length: Math.max(1, samples) }, () => askScore(endpoint, source, row, parseRetries)),
  );
  return scoreRowFromSamples(row.id, source.model, promptSha256, asked);
}

async function askScore(
  endpoint: LlmEndpoint,
  { model, setting }: ModelSource,
  row: DatasetRow,
  parseRetries: number,
): Promise<Asked> {
  let asked: Asked = { score: null, raw: '', error: 'unparseable answer: ' };
  for (let attempt = 0; attempt <= parseRetries; attempt++) {
    // Transport faults (429, 5xx, timeouts, outages) are waited out inside `complete`; what returns is an answer.
    const reply = await complete(endpoint, scoreRequest(model, row), setting);
    if ('rejected' in reply) return rejectedSample(reply.rejected);
    asked = parsedSample(reply.content);
    if (asked.score !== null) return asked;
  }
  return asked;
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
export async function scoreDifficulty(deps: ActivityDeps, input: ScoreInput): Promise<ScoreResult> {
  await mkdir(deps.workDir, { recursive: true });
  const work = await mkdtemp(join(deps.workDir, 'score-'));
  try {
    return await scoreStreamed(deps, input, work);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The first read: every row checked and counted, its estimate added up, its stored form written to `path`. */
async function firstRead(
  dataset: DatasetRows,
  path: string,
  estimate: ScoringEstimate | undefined,
): Promise<{ rows: number; sha256: string; estimate?: ScoringEstimate }> {
  let rows = 0;
  // Reading a large dataset from the store can outlast the heartbeat timeout before the step's own heartbeats start.
  await whileHeartbeating(
    () => ({ checked: rows }),
    async () => {
      const writer = await LineWriter.create(path);
      try {
        for await (const row of dataset) {
          await writer.text(JSON.stringify(storedRow(row)));
          estimate?.add(row);
          rows += 1;
        }
      } finally {
        await writer.close();
      }
    },
  );
  return { rows, sha256: dataset.sha256!, estimate };
}

async function scoreStreamed(deps: ActivityDeps, input: ScoreInput, work: string): Promise<ScoreResult> {
  const ctx = Context.current();
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  // The second scorer of scorer.compareWith writes its own files, beside the ones segmentation reads.
  const keys = input.output === 'compare' ? scoreCompareKeys(input.runId) : scoreKeys(input.runId);
  const dataset = readDatasetRows(deps, input.dataset, {
    format: input.datasetFormat,
    columns: input.datasetColumns,
    maxRowBytes: input.maxRowBytes,
  });
  const samples = input.scorer.samples ?? 1;
  const datasetPath = join(work, 'dataset.jsonl');
  const read = await firstRead(
    dataset,
    datasetPath,
    asksEndpoint(input.scorer.kind, deps.env)
      ? new ScoringEstimate({
          samples,
          price: input.scorer.pricePerMillionTokens,
          parseRetries: input.scorer.parseRetries,
        })
      : undefined,
  );
  const prompt = scorePromptFor(dataset.layout);
  const scorer =
    input.scorer.kind === 'file'
      ? {
          ...(await fileScorer(deps, input, { sha256: read.sha256, source: dataset.source })),
          flush: async () => {},
        }
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
  // scored: rows committed in order; answered: answers received in this attempt.
  const progress = { scored: 0, answered: 0, total: read.rows };
  return runStep(
    store,
    {
      runId: input.runId,
      step: input.output === 'compare' ? 'score/compare' : 'score',
      key: keys.manifest,
      inputsHash,
    },
    async (out) => {
      const estimate =
        scorer.meter &&
        beforeFirstRequest(
          read.estimate!.result(),
          { ...input.scorer, setting: 'input.scorer' },
          'scoring',
          (message, details) => log.info(message, details),
        );
      if (estimate) Object.assign(progress, { estimate });
      await out.putFile(keys.dataset, datasetPath);
      await out.put(keys.prompt, prompt.template);

      const partKey = (i: number) => keys.part(inputsHash, i);
      // Rows per committed part: a retried activity rescores only the parts that were not committed.
      const PART_ROWS = await rowsPerPart(out, partKey(0), read.rows);
      const parts = Math.ceil(read.rows / PART_ROWS);
      // What is kept of the scores while they go to the local file: counts, and where the failures are.
      const histogram: Record<string, number> = {};
      const failures = { count: 0, first: undefined as ScoreRow | undefined, parts: [] as number[] };
      const scoresPath = join(work, 'scores.jsonl');
      const scoresFile = await LineWriter.create(scoresPath);
      try {
        // Parts only spare a retry work: scores.jsonl holds every row, so they are not outputs of the step.
        await runPool<DatasetRow, ScoreRow>({
          parts: inParts(dataset, PART_ROWS),
          concurrency: input.scorer.concurrency,
          load: async ({ index, items }) => {
            if (!(await store.exists(partKey(index)))) return undefined;
            const stored = fromJsonl<ScoreRow>(await store.getText(partKey(index)));
            return stored.length === items.length ? stored : undefined;
          },
          work: async (row) => {
            const s = await scorer.score(row);
            progress.answered += 1;
            // Heartbeats are throttled by the SDK; one per answer keeps slow endpoints inside the heartbeat timeout.
            ctx.heartbeat(progress);
            return s;
          },
          save: async ({ index }, scored) => {
            await store.put(partKey(index), toJsonl(scored));
          },
          emit: async ({ index }, scored) => {
            let failedHere = false;
            for (const r of scored) {
              await scoresFile.text(JSON.stringify(storedScoreRow(r)));
              countOnClosedScale(histogram, r.score);
              if (r.score !== null) continue;
              failures.count += 1;
              failures.first ??= r;
              failedHere = true;
            }
            if (failedHere) failures.parts.push(index);
            progress.scored += scored.length;
          },
        });
      } finally {
        await scoresFile.close();
      }
      if (dataset.sha256 !== read.sha256 || progress.scored !== read.rows) {
        // Scores of the second read's rows must not be reused under the first read's inputs hash.
        for (let i = 0; i < parts; i++) await store.delete(partKey(i));
        throw new Error(
          `${dataset.source} changed while it was being scored (it was read twice, with different contents); ` +
            'the next attempt scores it as it is then',
        );
      }

      await scorer.flush();
      const failed = failures.count;
      if (failed > input.scorer.maxFailedFraction * read.rows) {
        // Drop the parts holding failures so that a resumed run asks again for just those rows.
        for (const i of failures.parts) await store.delete(partKey(i));
        throw ApplicationFailure.nonRetryable(
          `${failed} of ${read.rows} difficulty answers could not be parsed (limit ${input.scorer.maxFailedFraction * 100}%); ` +
            `e.g. row ${failures.first!.id}: ${JSON.stringify(failures.first!.raw)}`,
          'UnparseableScores',
          { failed, rows: read.rows },
        );
      }
      if (failed)
        log.warn('some difficulty answers were unparseable; those rows are left out of every stage', {
          failed,
        });

      const scores = await out.putFile(keys.scores, scoresPath);
      const result: ScoreResult = {
        datasetUri: store.uriFor(keys.dataset),
        scoresUri: store.uriFor(keys.scores),
        rows: read.rows,
        scored: read.rows - failed,
        failed,
        scorer: scorer.label,
        offline: scorer.offline,
        promptSha256: prompt.sha256,
        histogram,
        sha256: scores.sha256,
        ...(estimate && { cost: { estimate, spent: scorer.meter!.total() } }),
      };
      return result;
    },
    { heartbeat: () => progress },
  );
}
