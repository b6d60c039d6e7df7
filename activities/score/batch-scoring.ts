import { log } from '@temporalio/activity';
import { InvalidDataError } from '../../common/failures';
import { allowedLocation, openStore } from '../../store';
import { readDatasetRows, type DatasetRows } from '../datasets/read-dataset';
import type { DatasetRow } from '../datasets/rows';
import type { ActivityDeps } from '../deps';
import { answerCache } from '../llm/answer-cache';
import {
  checkBatchCost,
  batchCaps,
  collectRound,
  countRound,
  itemState,
  notCached,
  PastOutcomes,
  spentTokens,
  submitRound,
  type BatchCollected,
  type BatchSubmitted,
  type RoundContext,
} from '../llm/batch-rounds';
import { askAgain, endpointFor, scorerModel } from '../llm/llm-client';
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
import { SCORE_CORRECTION, scorePromptFor } from './score-prompt';

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
  /** Read again on each walk: the rows are never all in memory. */
  dataset: DatasetRows;
  model: string;
  samples: number;
  cache: ReturnType<typeof answerCache>;
  workDir: string;
}

/** The prompt's hash, known once the walk has read the dataset's first row (it gives the layout). */
const promptSha256 = (s: Scoring) => scorePromptFor(s.dataset.layout).sha256;

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
  return {
    ctx: { endpoint, store, runId: input.runId, step: 'score', setting: SETTING, caps: batchCaps(deps.env) },
    dataset,
    model: scorerModel(deps.env, input.scorer.model).model,
    samples: input.scorer.samples ?? 1,
    // The online step finds these answers only here: flushed to disk, unlike its own entries.
    cache: answerCache(store, 'score', true, true),
    workDir: deps.workDir,
  };
}

/** Where request `<row index>.<sample>` comes in the walk: rows in order, each row's samples in order. */
const positionOf = (id: string) => {
  const dot = id.indexOf('.');
  return Number(id.slice(0, dot)) * 65_536 + Number(id.slice(dot + 1));
};

/** The dataset's rows with their index, read as a stream. */
async function* indexedRows(dataset: DatasetRows): AsyncGenerator<[number, DatasetRow]> {
  let index = 0;
  for await (const row of dataset) yield [index++, row];
}

/**
 * Walks the rows the cache lacks with each sample's state after the rounds before `round`: `visit` gets the row, its
 * index, its cache material and the state of every sample. The dataset and the rounds' results are all read as
 * streams, side by side.
 */
async function eachUncached(
  s: Scoring,
  input: ScoreInput,
  round: number,
  visit: (row: DatasetRow, index: number, states: ReturnType<typeof itemState>[]) => Promise<void> | void,
): Promise<void> {
  const past = await PastOutcomes.open(s.ctx.store, s.ctx.runId, 'score', round, positionOf);
  const isCached = async ([, row]: [number, DatasetRow]) =>
    (await s.cache.get(scoreCacheMaterial(s.model, promptSha256(s), s.samples, row))) !== undefined;
  try {
    for await (const [index, row] of notCached(indexedRows(s.dataset), isCached)) {
      const states: ReturnType<typeof itemState>[] = [];
      for (let k = 0; k < s.samples; k++) {
        const id = customId(index, k);
        states.push(itemState(await past.get(id, positionOf(id)), input.scorer.parseRetries, parses));
      }
      await visit(row, index, states);
    }
  } finally {
    await past.close();
  }
}

/** Sends round `round`'s batch (or finds the one already sent); no batch id when nothing is left to ask. */
export async function submitScoreBatch(deps: ActivityDeps, input: ScoreBatchInput): Promise<BatchSubmitted> {
  const s = await scoring(deps, input);
  if (!s) return { round: input.round, requests: 0 };
  return submitRound(s.ctx, input.round, s.workDir, {
    ask: (add) =>
      eachUncached(s, input, input.round, async (row, index, states) => {
        for (const [k, state] of states.entries()) {
          if (state.done) continue;
          await add({
            customId: customId(index, k),
            request: askAgain(scoreRequest(s.model, row), state.unparsed, SCORE_CORRECTION),
          });
        }
      }),
    check: async (asked) => {
      if (asked.requests) {
        const spent = await spentTokens(s.ctx.store, s.ctx.runId, 'score', input.round);
        checkBatchCost(asked, spent, { ...input.scorer, setting: 'input.scorer' }, 'scoring');
      }
      log.info('scoring batch', { round: input.round, requests: asked.requests, rows: s.dataset.rows });
    },
  });
}

/** Reads round `round`'s finished batch and puts every row it completed into the answer cache. */
export async function collectScoreBatch(deps: ActivityDeps, input: ScoreCollectInput): Promise<BatchCollected> {
  const s = await scoring(deps, input);
  if (!s) throw new Error('a batch was submitted for a scorer that asks no endpoint');
  await collectRound(s.ctx, input.round, input.batchId, s.workDir);
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
    const scored = scoreRowFromSamples(row.id, s.model, promptSha256(s), asked);
    // Rows that failed are left out, as the online pool leaves them out: the scoring step asks them again.
    if (scored.score === null) return;
    s.cache.put(scoreCacheMaterial(s.model, promptSha256(s), s.samples, row), cachedScore(scored));
    cached += 1;
  });
  await s.cache.flush();
  return countRound(s.ctx, input.round, input.batchId, parses, pending, cached);
}
