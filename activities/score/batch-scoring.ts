import { log } from '@temporalio/activity';
import { InvalidDataError } from '../../common/failures';
import { allowedLocation, openStore } from '../../store';
import { readDatasetRows } from '../datasets/read-dataset';
import type { DatasetRow } from '../datasets/rows';
import type { ActivityDeps } from '../deps';
import { answerCache } from '../llm/answer-cache';
import type { BatchItem } from '../llm/batch-api';
import {
  checkBatchCost,
  collectRound,
  countRound,
  itemState,
  notCached,
  pastOutcomes,
  submitRound,
  type BatchCollected,
  type BatchSubmitted,
  type RoundContext,
} from '../llm/batch-rounds';
import { endpointFor, scorerModel } from '../llm/llm-client';
import type { ScoreInput } from '../types';
import { parseScore } from './parse-score';
import {
  cachedScore,
  parsedSample,
  rejectedSample,
  scoreCacheMaterial,
  scoreRequest,
  scoreRowFromSamples,
} from './score-answers';
import { scorePromptFor } from './score-prompt';

/**
 * `scorer.mode: "batch"`: the difficulty questions the answer cache lacks are asked through the Batch API, and every
 * row whose samples are all answered goes into the cache under the same key, with the same bytes, as the online pool
 * would have put there. The scoring step that follows takes those rows from the cache and asks online only what the
 * batches left (rows that failed, and rows the rounds ran out on).
 */

export interface ScoreBatchInput extends ScoreInput {
  round: number;
}

export interface ScoreCollectInput extends ScoreBatchInput {
  batchId: string;
}

const SETTING = 'input.scorer.mode';
const parses = (content: string) => parseScore(content).ok;
/** A row's sample `s` is the request `<row index>.<s>`: short, unique in a batch, the same in every round. */
const customId = (index: number, sample: number) => `${index}.${sample}`;

interface Scoring {
  ctx: RoundContext;
  rows: DatasetRow[];
  model: string;
  promptSha256: string;
  samples: number;
  cache: ReturnType<typeof answerCache>;
}

/** What a round needs, or undefined when this scorer asks no endpoint (offline, file scores). */
async function scoring(deps: ActivityDeps, input: ScoreInput): Promise<Scoring | undefined> {
  const kind = input.scorer.kind;
  if (kind === 'file' || kind === 'ifd') return undefined;
  const endpoint = endpointFor(kind, 'input.scorer.kind', deps.env, {
    maxRetries: input.scorer.requestRetries,
    timeoutSeconds: input.scorer.timeoutSeconds,
  });
  if (!endpoint) return undefined;
  if (input.scorer.cache === false) {
    // The batches hand their answers to the scoring step through the cache.
    throw new InvalidDataError('input.scorer.mode "batch" needs input.scorer.cache (the batches fill the cache)', {
      field: 'input.scorer.cache',
    });
  }
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const dataset = readDatasetRows(deps, input.dataset, {
    format: input.datasetFormat,
    columns: input.datasetColumns,
    maxRowBytes: input.maxRowBytes,
  });
  const rows: DatasetRow[] = [];
  for await (const row of dataset) rows.push(row);
  return {
    ctx: { endpoint, store, runId: input.runId, step: 'score', setting: SETTING },
    rows,
    model: scorerModel(deps.env, input.scorer.model).model,
    promptSha256: scorePromptFor(dataset.layout).sha256,
    samples: input.scorer.samples ?? 1,
    cache: answerCache(store, 'score', true),
  };
}

/**
 * Walks the rows the cache lacks with each sample's state after the rounds before `round`: `visit` gets the row, its
 * index, its cache material and the state of every sample.
 */
async function eachUncached(
  s: Scoring,
  input: ScoreInput,
  round: number,
  visit: (row: DatasetRow, index: number, states: ReturnType<typeof itemState>[]) => void,
) {
  const past = await pastOutcomes(s.ctx.store, s.ctx.runId, 'score', round);
  const isCached = async ([, row]: [number, DatasetRow]) =>
    (await s.cache.get(scoreCacheMaterial(s.model, s.promptSha256, s.samples, row))) !== undefined;
  for await (const [index, row] of notCached(s.rows.entries(), isCached)) {
    const states = Array.from({ length: s.samples }, (_, k) =>
      itemState(past.get(customId(index, k)), input.scorer.parseRetries, parses),
    );
    visit(row, index, states);
  }
  return past;
}

/** Sends round `round`'s batch (or finds the one already sent); no batch id when nothing is left to ask. */
export async function submitScoreBatch(deps: ActivityDeps, input: ScoreBatchInput): Promise<BatchSubmitted> {
  const s = await scoring(deps, input);
  if (!s) return { round: input.round, requests: 0 };
  return submitRound(s.ctx, input.round, async () => {
    const items: BatchItem[] = [];
    const past = await eachUncached(s, input, input.round, (row, index, states) => {
      states.forEach((state, k) => {
        if (!state.done) items.push({ customId: customId(index, k), request: scoreRequest(s.model, row) });
      });
    });
    if (items.length) checkBatchCost(items, past, { ...input.scorer, setting: 'input.scorer' }, 'scoring');
    log.info('scoring batch', { round: input.round, requests: items.length, rows: s.rows.length });
    return items;
  });
}

/** Reads round `round`'s finished batch and puts every row it completed into the answer cache. */
export async function collectScoreBatch(deps: ActivityDeps, input: ScoreCollectInput): Promise<BatchCollected> {
  const s = await scoring(deps, input);
  if (!s) throw new Error('a batch was submitted for a scorer that asks no endpoint');
  const outcomes = await collectRound(s.ctx, input.round, input.batchId);
  let pending = 0;
  let cached = 0;
  await eachUncached(s, input, input.round + 1, (row, _index, states) => {
    const open = states.filter((st) => !st.done).length;
    if (open) {
      pending += open;
      return;
    }
    const asked = states.map((st) => {
      const outcome = (st as Extract<typeof st, { done: true }>).outcome;
      return 'rejected' in outcome ? rejectedSample(outcome.rejected) : parsedSample(outcome.content);
    });
    const scored = scoreRowFromSamples(row.id, s.model, s.promptSha256, asked);
    // Rows that failed are left out, as the online pool leaves them out: the scoring step asks them again.
    if (scored.score === null) return;
    s.cache.put(scoreCacheMaterial(s.model, s.promptSha256, s.samples, row), cachedScore(scored));
    cached += 1;
  });
  await s.cache.flush();
  return countRound(input.round, input.batchId, outcomes, parses, pending, cached);
}
