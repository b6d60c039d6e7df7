import { log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { WorkerMisconfiguredError } from '../../common/failures';
import type { ObjectStore } from '../../store';
import { sha256 } from '../artifacts/hashing';
import { fromJsonl, toJsonl } from '../artifacts/jsonl';
import { batchRoundKeys } from '../artifacts/run-keys';
import {
  batchFinished,
  batchJsonl,
  batchOutcomes,
  createBatch,
  findBatch,
  retrieveBatch,
  uploadBatchFile,
  type BatchItem,
  type BatchOutcome,
} from './batch-api';
import {
  checkEstimate,
  costOf,
  requestTokens,
  TOKEN_COUNTING,
  type CostLimits,
  type TokenCount,
} from './cost-estimate';
import { llmEndpoint, type LlmEndpoint } from './llm-client';

/**
 * Rounds of Batch API requests that pre-fill a step's answer cache. Round 0 asks everything the cache lacks; each
 * later round asks again what failed, expired or did not parse, until nothing is left or the rounds run out. Every
 * round is kept in the run's store (the request file, the batch id, every outcome), so an activity that runs again
 * finds its batch instead of creating (and paying for) a second one, and the outcomes of all rounds decide what the
 * next one asks.
 */

/** What a submit activity returns to the workflow: no batch id when nothing was left to ask. */
export interface BatchSubmitted {
  round: number;
  batchId?: string;
  requests: number;
}

export interface BatchPolled {
  batchId: string;
  status: string;
  done: boolean;
  counts?: { total: number; completed: number; failed: number };
}

/** A collected round: its requests' outcomes counted, and how many are still to be asked in another round. */
export interface BatchCollected {
  round: number;
  batchId: string;
  answered: number;
  rejected: number;
  /** Answers that did not parse (each asked again up to `parseRetries` times). */
  unparseable: number;
  /** Requests that failed on the endpoint's side, expired or have no result. */
  retry: number;
  /** Requests a next round would ask. */
  pending: number;
  /** Entries this round put into the answer cache. */
  cached: number;
}

/** Where the workflow's poll activity finds its endpoint: the setting naming the batch mode, for messages. */
export interface BatchRef {
  batchId: string;
  setting: string;
}

export function batchEndpoint(env: NodeJS.ProcessEnv, setting: string): LlmEndpoint {
  const endpoint = llmEndpoint(env, { maxRetries: 6, timeoutSeconds: 120 });
  if (!endpoint) {
    throw new WorkerMisconfiguredError(
      `${setting} is "batch" but the worker has no PIFT_OPENAI_BASE_URL / OPENAI_API_KEY`,
      'PIFT_OPENAI_BASE_URL',
      setting,
    );
  }
  return endpoint;
}

/** The poll the workflow makes between its timers: one retrieve. */
export async function pollBatch(env: NodeJS.ProcessEnv, ref: BatchRef): Promise<BatchPolled> {
  const batch = await retrieveBatch(batchEndpoint(env, ref.setting), ref.batchId, ref.setting);
  if (batch.status === 'failed' || batch.status === 'cancelled') {
    // Its requests are asked again in the next round; why it failed (e.g. a line the endpoint refused) is said here.
    log.warn('batch did not run', {
      batchId: batch.id,
      status: batch.status,
      errors: (batch.errors?.data ?? [])
        .slice(0, 5)
        .map((e) => `${e.code ?? ''} line ${e.line ?? '?'}: ${e.message ?? ''}`),
    });
  }
  return {
    batchId: batch.id,
    status: batch.status,
    done: batchFinished(batch.status),
    ...(batch.request_counts && { counts: batch.request_counts }),
  };
}

export interface RoundContext {
  endpoint: LlmEndpoint;
  store: ObjectStore;
  runId: string;
  step: 'score' | 'evaluate';
  /** `input.scorer.mode` or `input.evaluation.mode`. */
  setting: string;
}

/** Every earlier round's outcomes of each request, oldest first. */
export async function pastOutcomes(
  store: ObjectStore,
  runId: string,
  step: RoundContext['step'],
  before: number,
): Promise<Map<string, BatchOutcome[]>> {
  const all = new Map<string, BatchOutcome[]>();
  for (let round = 0; round < before; round++) {
    const key = batchRoundKeys(runId, step, round).results;
    if (!(await store.exists(key))) continue;
    for (const o of fromJsonl<BatchOutcome>(await store.getText(key))) {
      const list = all.get(o.customId);
      if (list) list.push(o);
      else all.set(o.customId, [o]);
    }
  }
  return all;
}

/** Where one request stands after the rounds so far. */
export type ItemState =
  { done: true; outcome: Exclude<BatchOutcome, { retry: string }>; asks: number } | { done: false; asks: number };

/**
 * A request is done once it was rejected, or answered with something that parses, or answered unparseably
 * `parseRetries` + 1 times (the online path's re-ask rule); failures on the endpoint's side and expiries do not count
 * as asks.
 */
export function itemState(
  outcomes: BatchOutcome[] | undefined,
  parseRetries: number,
  parses: (content: string) => boolean,
): ItemState {
  let asks = 0;
  for (const o of outcomes ?? []) {
    if ('retry' in o) continue;
    if ('rejected' in o) return { done: true, outcome: o, asks };
    asks += 1;
    if (parses(o.content) || asks > parseRetries) return { done: true, outcome: o, asks };
  }
  return { done: false, asks };
}

/** The tokens the endpoint reported for every answer of earlier rounds. */
function spentTokens(past: Map<string, BatchOutcome[]>): TokenCount {
  const spent = { prompt: 0, output: 0 };
  for (const list of past.values()) {
    for (const o of list) {
      if (!('content' in o) || !o.usage) continue;
      spent.prompt += o.usage.prompt_tokens ?? 0;
      spent.output += o.usage.completion_tokens ?? 0;
    }
  }
  return spent;
}

/**
 * The step's limits, checked before a batch is sent (a batch cannot be stopped halfway the way the online pool
 * stops before its next request): what earlier rounds reported plus this batch's estimate.
 */
export function checkBatchCost(
  items: BatchItem[],
  past: Map<string, BatchOutcome[]>,
  limits: CostLimits,
  stepName: string,
): void {
  const total = spentTokens(past);
  for (const { request } of items) {
    const one = requestTokens(request.messages, request.max_tokens);
    total.prompt += one.prompt;
    total.output += one.output;
  }
  const costUsd = costOf(total, limits.pricePerMillionTokens);
  checkEstimate(
    {
      requests: items.length,
      promptTokens: total.prompt,
      outputTokens: total.output,
      totalTokens: total.prompt + total.output,
      ...(costUsd === undefined ? {} : { costUsd }),
      tokenCounting: TOKEN_COUNTING,
      assumptions: ['a batch of the requests the cache lacks, plus what earlier batches of this step reported'],
    },
    limits,
    stepName,
  );
}

/**
 * Sends round `round`'s batch, once: a round already sent returns its stored batch id, and one whose file was uploaded
 * by an attempt that died before recording the batch looks for that batch (by its metadata) before creating one.
 */
export async function submitRound(
  ctx: RoundContext,
  round: number,
  items: () => Promise<BatchItem[]>,
): Promise<BatchSubmitted> {
  const keys = batchRoundKeys(ctx.runId, ctx.step, round);
  if (await ctx.store.exists(keys.batch)) {
    const stored = JSON.parse(await ctx.store.getText(keys.batch)) as { batchId: string; requests: number };
    return { round, batchId: stored.batchId, requests: stored.requests };
  }
  const asked = await items();
  if (!asked.length) return { round, requests: 0 };
  const jsonl = batchJsonl(asked);
  // Names the round and its exact requests: a batch found by it is this round's, not another run's or round's.
  const metadata = { pift_round: `${ctx.runId}/${ctx.step}/${round}`, pift_requests: sha256(jsonl).slice(0, 32) };
  let batch = (await ctx.store.exists(keys.upload)) ? await findBatch(ctx.endpoint, metadata, ctx.setting) : undefined;
  if (!batch) {
    await ctx.store.put(keys.requests, jsonl);
    const inputFileId = await uploadBatchFile(ctx.endpoint, jsonl, ctx.setting);
    await ctx.store.put(keys.upload, JSON.stringify({ inputFileId, requests: asked.length }));
    batch = await createBatch(ctx.endpoint, inputFileId, metadata, ctx.setting);
  }
  await ctx.store.put(
    keys.batch,
    JSON.stringify({ batchId: batch.id, inputFileId: batch.input_file_id, requests: asked.length }),
  );
  return { round, batchId: batch.id, requests: asked.length };
}

/** The finished batch's outcomes, downloaded once and kept in the store (a collect that runs again reads them). */
export async function collectRound(ctx: RoundContext, round: number, batchId: string): Promise<BatchOutcome[]> {
  const keys = batchRoundKeys(ctx.runId, ctx.step, round);
  if (await ctx.store.exists(keys.results)) return fromJsonl<BatchOutcome>(await ctx.store.getText(keys.results));
  const batch = await retrieveBatch(ctx.endpoint, batchId, ctx.setting);
  if (!batchFinished(batch.status)) {
    // The workflow collects only after a poll saw the batch finished; a retry waits for the endpoint to agree.
    throw ApplicationFailure.retryable(`batch ${batchId} is ${batch.status}, not finished yet`, 'BatchNotFinished');
  }
  const customIds = fromJsonl<{ custom_id: string }>(await ctx.store.getText(keys.requests)).map((l) => l.custom_id);
  const outcomes = await batchOutcomes(ctx.endpoint, batch, customIds, ctx.setting);
  await ctx.store.put(keys.results, toJsonl(outcomes));
  return outcomes;
}

/** A round's outcomes counted for the workflow. */
export function countRound(
  round: number,
  batchId: string,
  outcomes: BatchOutcome[],
  parses: (content: string) => boolean,
  pending: number,
  cached: number,
): BatchCollected {
  const counts = { answered: 0, rejected: 0, unparseable: 0, retry: 0 };
  for (const o of outcomes) {
    if ('retry' in o) counts.retry += 1;
    else if ('rejected' in o) counts.rejected += 1;
    else if (parses(o.content)) counts.answered += 1;
    else counts.unparseable += 1;
  }
  return { round, batchId, ...counts, pending, cached };
}

/**
 * The entries the answer cache lacks, in order, looked up `width` at a time: one store round trip per entry would
 * make a million-row round take hours on S3.
 */
export async function* notCached<T>(
  entries: Iterable<T>,
  isCached: (entry: T) => Promise<boolean>,
  width = 64,
): AsyncGenerator<T> {
  let chunk: T[] = [];
  const flush = async function* () {
    const cached = await Promise.all(chunk.map(isCached));
    for (const [i, entry] of chunk.entries()) if (!cached[i]) yield entry;
    chunk = [];
  };
  for (const entry of entries) {
    chunk.push(entry);
    if (chunk.length >= width) yield* flush();
  }
  yield* flush();
}
