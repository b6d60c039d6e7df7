import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import { log } from '@temporalio/activity';
import type { Batch } from 'openai/resources/batches';
import { ApplicationFailure } from '@temporalio/common';
import { InvalidDataError, WorkerMisconfiguredError } from '../../common/failures';
import { allowedLocation, openStore, type ObjectStore } from '../../store';
import { streamJsonlChunks } from '../artifacts/jsonl';
import { linesOf, withLongerLines, withRows, type Rows } from '../rows/engine';
import { LineWriter } from '../rows/row-file';
import { batchRoundKeys } from '../artifacts/run-keys';
import { batchApi, batchFinished, batchLine, outcomeOf, type BatchItem, type BatchOutcome } from './batch-api';
import { checkEstimate, RequestCount, type CostLimits, type TokenCount } from './cost-estimate';
import { answerCache, type AnswerCache } from './answer-cache';
import { askAgain, llmEndpoint, type LlmEndpoint } from './llm-client';
import { positiveIntegerSetting } from '../worker-defaults';
import type { ActivityDeps } from '../deps';

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
  /** The round's (first) batch. */
  batchId?: string;
  /** Every batch of a round above the endpoint's caps on one batch (see batchCaps); absent for a single batch. */
  batchIds?: string[];
  requests: number;
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
  /** All of the round's batches when it has several. */
  batchIds?: string[];
  setting: string;
}

/**
 * The caps on one batch, a round with more being sent as several batches, polled and collected together: OpenAI's
 * 50,000 requests and 200 MB input file (the bytes kept under it), or an endpoint's own through PIFT_BATCH_MAX_REQUESTS
 * / PIFT_BATCH_MAX_BYTES (bytes of the uploaded request file).
 */
export const batchCaps = (env: NodeJS.ProcessEnv) => ({
  requests: positiveIntegerSetting(env, 'PIFT_BATCH_MAX_REQUESTS', 50_000),
  bytes: positiveIntegerSetting(env, 'PIFT_BATCH_MAX_BYTES', 190_000_000),
});

/**
 * The wait for a round's batches as one activity (samples-typescript `polling/infrequent`): each attempt looks once at
 * each batch and throws while one still runs, so the activity's retry policy, one look per `pollInterval`, is the poll
 * loop and the history holds one activity however many looks a 24-hour batch takes.
 */
export async function waitForBatch(env: NodeJS.ProcessEnv, ref: BatchRef): Promise<void> {
  const endpoint = llmEndpoint(env, { maxRetries: 6, timeoutSeconds: 120 });
  if (!endpoint) {
    const message = `${ref.setting} is "batch" but the worker has no PIFT_OPENAI_BASE_URL / OPENAI_API_KEY`;
    throw new WorkerMisconfiguredError(message, 'PIFT_OPENAI_BASE_URL', ref.setting);
  }
  const batches: Batch[] = [];
  for (const batchId of ref.batchIds ?? [ref.batchId]) {
    const batch = await batchApi(endpoint, ref.setting).retrieve(batchId);
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
    batches.push(batch);
  }
  if (batches.every((b) => batchFinished(b.status))) return;
  const counts = batches.map((b) => b.request_counts);
  const sum = (k: 'total' | 'completed' | 'failed') => counts.reduce((n, c) => n + c![k], 0);
  const done = counts.every(Boolean) ? ` (${sum('completed') + sum('failed')}/${sum('total')} done)` : '';
  throw ApplicationFailure.create({
    // A look at a batch that is still running: retried by the activity's retry policy.
    type: 'BatchRunning',
    message: `batch ${ref.batchId} is ${batches.map((b) => b.status).join(' ')}${done}`,
    // An expected state, not an error: logged at debug level and kept out of the failure metrics.
    category: 'BENIGN',
  });
}

/** The row engine's connection and its scratch folder (see withRows), for one activity's walks and files. */
type Engine = { rows: Rows; dir: string };

export interface RoundContext {
  endpoint: LlmEndpoint;
  store: ObjectStore;
  runId: string;
  step: 'score' | 'evaluate';
  /** `input.scorer.mode` or `input.evaluation.mode`. */
  setting: string;
  /** The caps on one batch (see batchCaps). */
  caps: ReturnType<typeof batchCaps>;
}

/** A round's batch.json: its first batch as before batches were split, and every batch when there are several. */
interface StoredRound {
  batchId: string;
  inputFileId?: string;
  requests: number;
  batches?: Array<{ batchId: string; inputFileId: string; requests: number }>;
}

const submittedOf = (round: number, stored: StoredRound): BatchSubmitted => ({
  round,
  batchId: stored.batchId,
  ...(stored.batches && { batchIds: stored.batches.map((b) => b.batchId) }),
  requests: stored.requests,
});

/** The results files of the rounds before `before` (a round that asked nothing has none). */
async function resultsBefore(store: ObjectStore, runId: string, step: RoundContext['step'], before: number) {
  const keys = Array.from({ length: before }, (_, round) => batchRoundKeys(runId, step, round).results);
  const exists = await Promise.all(keys.map((key) => store.exists(key)));
  return keys.filter((_, round) => exists[round]);
}

/**
 * Every earlier round's outcomes of each request, oldest first, for requests walked in the order the rounds asked
 * them (`position` gives that order): the rounds' outcomes, each after its request's position, are sorted by it in the
 * row engine, whatever order a results file is in, and read alongside the walk, so none is held whole. `spent`: the
 * tokens the endpoint reported for their answers.
 */
export async function openPastOutcomes(
  { store, runId, step }: Pick<RoundContext, 'store' | 'runId' | 'step'>,
  before: number,
  position: (customId: string) => number,
  { rows, dir }: Engine,
) {
  const path = join(dir, 'past-outcomes.tsv');
  const writer = await LineWriter.create(path);
  const spent: TokenCount = { prompt: 0, output: 0 };
  try {
    // JSON.stringify never writes a raw tab: the position ends at the first.
    for (const key of await resultsBefore(store, runId, step, before)) {
      for await (const outcomes of streamJsonlChunks<BatchOutcome>(store, key)) {
        for (const o of outcomes) {
          await writer.text(`${position(o.customId)}\t${JSON.stringify(o)}`);
          spent.prompt += ('content' in o && o.usage?.prompt_tokens) || 0;
          spent.output += ('content' in o && o.usage?.completion_tokens) || 0;
        }
      }
    }
  } finally {
    await writer.close();
  }
  await withLongerLines(async (maxLine) => {
    await rows.run(`CREATE OR REPLACE TABLE past AS SELECT CAST(split_part(line, chr(9), 1) AS DOUBLE) AS place, pos,
      line[strpos(line, chr(9)) + 1:] AS outcome FROM ${await linesOf(rows, path, maxLine, 'past_lines')}`);
  });
  const sorted = (await rows.stream('SELECT place, outcome FROM past ORDER BY place, pos')).yieldRowsJs();
  let [chunk, next] = [[] as unknown[][], 0];
  return {
    spent,
    /** Call in walking order, each request once. */
    async get(customId: string, at: number): Promise<BatchOutcome[]> {
      const found: BatchOutcome[] = [];
      for (;;) {
        if (next === chunk.length) {
          const read = await sorted.next();
          if (read.done) return found;
          [chunk, next] = [read.value, 0];
        }
        const [here, text] = chunk[next] as [number, string];
        if (here > at) return found;
        next += 1;
        const o = JSON.parse(text) as BatchOutcome;
        if (here === at && o.customId === customId) found.push(o);
      }
    },
  };
}

type PastOutcomes = Awaited<ReturnType<typeof openPastOutcomes>>;

/** Where one request stands after the rounds so far; an open one that was asked has its `unparsed` last reply. */
type ItemState =
  | { done: true; outcome: Exclude<BatchOutcome, { retry: string }>; asks: number }
  | { done: false; asks: number; unparsed?: string };

/**
 * A request is done once it was rejected, or answered with something that parses, or answered unparseably
 * `parseRetries` + 1 times (the online path's re-ask rule); failures on the endpoint's side and expiries do not count
 * as asks.
 */
function itemState(
  outcomes: BatchOutcome[] | undefined,
  parseRetries: number,
  parses: (content: string) => boolean,
): ItemState {
  let asks = 0;
  let unparsed: string | undefined;
  for (const o of outcomes ?? []) {
    if ('retry' in o) continue;
    if ('rejected' in o) return { done: true, outcome: o, asks };
    asks += 1;
    if (parses(o.content) || asks > parseRetries) return { done: true, outcome: o, asks };
    unparsed = o.content;
  }
  return { done: false, asks, ...(unparsed !== undefined && { unparsed }) };
}

/**
 * The entries the answer cache lacks, in order, looked up `width` at a time: one store round trip per entry would
 * make a million-row round take hours on S3.
 */
async function* notCached<T>(
  entries: Iterable<T> | AsyncIterable<T>,
  isCached: (entry: T) => Promise<boolean>,
  width = 64,
): AsyncGenerator<T> {
  let chunk: T[] = [];
  const flush = async function* () {
    const cached = await Promise.all(chunk.map(isCached));
    for (const [i, entry] of chunk.entries()) if (!cached[i]) yield entry;
    chunk = [];
  };
  for await (const entry of entries) {
    chunk.push(entry);
    if (chunk.length >= width) yield* flush();
  }
  yield* flush();
}

/**
 * A step's requests as its Batch API activities walk them (scoring, judging): items in walking order, each with one
 * or more requests, and the answer cache the batches fill with the entries the online step would have written.
 */
export interface BatchStep<T> {
  ctx: RoundContext;
  /** The step's answer cache, flushed to disk: the online step finds the batches' answers only there. */
  cache: AnswerCache;
  parseRetries: number;
  parses: (content: string) => boolean;
  /** The corrective turn a re-ask adds after the request's own unparseable reply (see askAgain). */
  correction: string;
  /** Where a custom_id comes in the walk. */
  position: (customId: string) => number;
  /** The step's items in walking order, read again on each walk. */
  items: () => AsyncIterable<T>;
  isCached: (item: T) => Promise<boolean>;
  /** The item's requests, in walking order. */
  requests: (item: T) => Array<{ customId: string; request: () => BatchItem['request'] }>;
  /** Puts an item whose requests are all done into the cache; false when it is left for the online step. */
  keep: (item: T, states: Array<Extract<ItemState, { done: true }>>) => boolean;
  limits: CostLimits;
  /** `scoring` or `judging`. */
  name: string;
  /** What the submit's log line says besides the round and its requests. */
  logged: () => Record<string, unknown>;
}

/**
 * The items the cache lacks, each request with its state after the `past` rounds. The items and the rounds' outcomes
 * are all read as streams, side by side.
 */
async function* uncached<T>(s: BatchStep<T>, past: PastOutcomes) {
  for await (const item of notCached(s.items(), s.isCached)) {
    const requests = [];
    for (const r of s.requests(item)) {
      const state = itemState(await past.get(r.customId, s.position(r.customId)), s.parseRetries, s.parses);
      requests.push({ ...r, state });
    }
    yield { item, requests };
  }
}

/** One batch of a round: a consecutive byte range of its request file. */
interface BatchPart {
  start: number;
  bytes: number;
  requests: number;
  hash: Hash;
}

/**
 * Writes round `round`'s requests (those not done after the earlier rounds) to `path`, cut into parts within the caps
 * on one batch, and checks the step's limits before any is sent (a batch cannot be stopped halfway the way the online
 * pool stops before its next request): what earlier rounds reported plus this round's estimate.
 */
async function writeRequests<T>(s: BatchStep<T>, round: number, path: string, engine: Engine): Promise<BatchPart[]> {
  const { caps } = s.ctx;
  const parts: BatchPart[] = [];
  const asked = new RequestCount(1, null);
  const past = await openPastOutcomes(s.ctx, round, s.position, engine);
  const writer = await LineWriter.create(path);
  try {
    for await (const { requests } of uncached(s, past)) {
      for (const { customId, request, state } of requests) {
        if (state.done) continue;
        const item = { customId, request: askAgain(request(), state.unparsed, s.correction) };
        const line = batchLine(item);
        const bytes = Buffer.byteLength(line) + 1;
        let part = parts.at(-1);
        if (!part || part.requests >= caps.requests || (part.requests > 0 && part.bytes + bytes > caps.bytes)) {
          part = { start: part ? part.start + part.bytes : 0, bytes: 0, requests: 0, hash: createHash('sha256') };
          parts.push(part);
        }
        part.hash.update(line).update('\n');
        part.requests += 1;
        part.bytes += bytes;
        await writer.text(line);
        asked.add(item.request.messages, item.request.max_tokens);
      }
    }
  } finally {
    await writer.close();
  }
  if (asked.requests) {
    asked.tokens.prompt += past.spent.prompt;
    asked.tokens.output += past.spent.output;
    const assumed = 'a batch of the requests the cache lacks, plus what earlier batches of this step reported';
    checkEstimate(asked.result(s.limits.pricePerMillionTokens, [assumed]), s.limits, s.name);
  }
  log.info(`${s.name} batch`, { round, requests: asked.requests, ...s.logged() });
  return parts;
}

/**
 * Sends round `round`'s batch, once: a round already sent returns its stored batch id, and one whose file was uploaded
 * by an attempt that died before recording the batch looks for that batch (by its metadata) before creating one. A
 * round above the caps on one batch (see batchCaps) is cut into consecutive batches, each sent the same way; the
 * round's requests.jsonl keeps all of them, in order. No batch id when nothing is left to ask.
 */
async function submit<T>(s: BatchStep<T>, round: number, deps: ActivityDeps): Promise<BatchSubmitted> {
  const { ctx } = s;
  const keys = batchRoundKeys(ctx.runId, ctx.step, round);
  const sent = await ctx.store.findText(keys.batch);
  if (sent !== undefined) return submittedOf(round, JSON.parse(sent) as StoredRound);
  // The request file is written line by line to the scratch folder, then stored and uploaded from there.
  return withRows(deps, async (rows, dir) => {
    const path = join(dir, 'requests.jsonl');
    const parts = await writeRequests(s, round, path, { rows, dir });
    if (!parts.length) return { round, requests: 0 };
    const api = batchApi(ctx.endpoint, ctx.setting);
    await ctx.store.putFile(keys.requests, path);
    const batches: NonNullable<StoredRound['batches']> = [];
    for (const [k, part] of parts.entries()) {
      // Names the round (and its part of it) and its exact requests: a batch found by it is this one, not another
      // run's or round's. The first part is named as a round of one batch always was, so an earlier run resumes.
      const metadata = {
        pift_round: `${ctx.runId}/${ctx.step}/${round}${k ? `.${k}` : ''}`,
        pift_requests: part.hash.digest('hex').slice(0, 32),
      };
      const uploadKey = keys.uploadOfPart(k);
      let batch = (await ctx.store.exists(uploadKey)) ? await api.find(metadata) : undefined;
      if (!batch) {
        const range = { start: part.start, end: part.start + part.bytes };
        const inputFileId = await api.upload(path, range);
        await ctx.store.put(uploadKey, JSON.stringify({ inputFileId, requests: part.requests }));
        batch = await api.create(inputFileId, metadata);
      }
      batches.push({ batchId: batch.id, inputFileId: batch.input_file_id, requests: part.requests });
    }
    const stored: StoredRound = {
      batchId: batches[0].batchId,
      inputFileId: batches[0].inputFileId,
      requests: parts.reduce((n, p) => n + p.requests, 0),
      ...(batches.length > 1 && { batches }),
    };
    await ctx.store.put(keys.batch, JSON.stringify(stored));
    return submittedOf(round, stored);
  });
}

/**
 * Tables `req` (pos, id: the requests of the request file at `requests`, in order) and `res` (id, line: each request's
 * last line in the batches' output and error `files`, a line that does not parse or names no custom_id passed over).
 */
async function loadResults(rows: Rows, files: string[], requests: string): Promise<void> {
  await withLongerLines(async (maxLine) => {
    // Each line's place: its file (in the order a later line wins), then its place in the file.
    const all: string[] = [];
    for (const [f, path] of files.entries()) {
      all.push(`SELECT ${f} * 4294967296 + pos AS place, line FROM ${await linesOf(rows, path, maxLine, `f${f}`)}`);
    }
    await rows.run(`CREATE OR REPLACE TABLE res AS
      SELECT json_extract_string(line, '$.custom_id') AS id, arg_max(line, place) AS line
      FROM (${[...all, 'SELECT 0 AS place, NULL AS line WHERE false'].join(' UNION ALL ')})
      WHERE CASE WHEN json_valid(line) THEN json_type(line, '$.custom_id') = 'VARCHAR' ELSE false END
      GROUP BY id`);
    await rows.run(`CREATE OR REPLACE TABLE req AS
      SELECT pos, json_extract_string(line, '$.custom_id') AS id FROM ${await linesOf(rows, requests, maxLine)}`);
  });
}

/**
 * The outcome of every request of round `round`, downloaded once and kept in the store (a collect that runs again
 * reads them), written in the order of the round's request file. The finished batches hold consecutive runs of its
 * requests; their output and error files are downloaded to the scratch folder and joined with the requests in the row
 * engine (see loadResults), so no file is held in memory. A request's last line wins (the error file after the output
 * file); a request no file names (a failed or cancelled batch) is to be asked again. Custom ids are unique within a
 * round, so the lines of all its batches are looked up together.
 */
async function download(ctx: RoundContext, round: number, batchId: string, { rows, dir }: Engine): Promise<void> {
  const keys = batchRoundKeys(ctx.runId, ctx.step, round);
  if (await ctx.store.exists(keys.results)) return;
  const sent = await ctx.store.findText(keys.batch);
  const stored = sent === undefined ? undefined : (JSON.parse(sent) as StoredRound);
  const api = batchApi(ctx.endpoint, ctx.setting);
  const batches: Array<{ batch: Batch; requests: number }> = [];
  const files: string[] = [];
  for (const part of stored?.batches ?? [{ batchId, requests: stored?.requests ?? 0 }]) {
    const batch = await api.retrieve(part.batchId);
    if (!batchFinished(batch.status)) {
      // The workflow collects only after a poll saw the batch finished; a retry waits for the endpoint to agree.
      const message = `batch ${part.batchId} is ${batch.status}, not finished yet`;
      throw ApplicationFailure.retryable(message, 'BatchNotFinished');
    }
    batches.push({ batch, requests: part.requests });
    for (const fileId of [batch.output_file_id, batch.error_file_id]) {
      if (!fileId) continue;
      files.push(join(dir, `${files.length}.jsonl`));
      await api.download(fileId, files.at(-1)!);
    }
  }
  const requests = join(dir, 'requests.jsonl');
  await ctx.store.getFile(keys.requests, requests);
  await loadResults(rows, files, requests);
  const joined = await rows.stream('SELECT req.id, res.line FROM req LEFT JOIN res USING (id) ORDER BY req.pos');
  /** The batch of the `n`th request (from 0). */
  const batchOf = (n: number, end = 0) => (batches.find((b) => n < (end += b.requests)) ?? batches.at(-1)!).batch;
  const path = join(dir, 'results.jsonl');
  const writer = await LineWriter.create(path);
  try {
    let n = 0;
    for await (const chunk of joined.yieldRowsJs()) {
      for (const [customId, line] of chunk as Array<[string, string | null]>) {
        const { id, status } = batchOf(n++);
        const o =
          line === null ? { customId, retry: `no result in batch ${id} (${status})` } : outcomeOf(customId, line);
        await writer.text(JSON.stringify(o));
      }
    }
  } finally {
    await writer.close();
  }
  await ctx.store.putFile(keys.results, path);
}

/**
 * Reads round `round`'s finished batch, puts every item it completed into the answer cache, and counts the round's
 * outcomes for the workflow from the results the collect stored.
 */
async function collect<T>(
  s: BatchStep<T>,
  round: number,
  batchId: string,
  deps: ActivityDeps,
): Promise<BatchCollected> {
  let pending = 0;
  let cached = 0;
  await withRows(deps, async (rows, dir) => {
    await download(s.ctx, round, batchId, { rows, dir });
    const past = await openPastOutcomes(s.ctx, round + 1, s.position, { rows, dir });
    for await (const { item, requests } of uncached(s, past)) {
      const states = requests.map((r) => r.state);
      const open = states.filter((st) => !st.done).length;
      if (open) pending += open;
      else if (s.keep(item, states as Array<Extract<ItemState, { done: true }>>)) cached += 1;
    }
  });
  await s.cache.flush();
  const counts = { answered: 0, rejected: 0, unparseable: 0, retry: 0 };
  const { results } = batchRoundKeys(s.ctx.runId, s.ctx.step, round);
  for await (const outcomes of streamJsonlChunks<BatchOutcome>(s.ctx.store, results)) {
    for (const o of outcomes) {
      const kind =
        'retry' in o ? 'retry' : 'rejected' in o ? 'rejected' : s.parses(o.content) ? 'answered' : 'unparseable';
      counts[kind] += 1;
    }
  }
  return { round, batchId, ...counts, pending, cached };
}

/**
 * What scoring's and judging's batch steps start from: the run's store, the answer cache through which the batches
 * hand their answers to the online step (so `mode` "batch" needs `cache` on), and the rounds' context.
 */
export function batchStepBase(
  deps: ActivityDeps,
  input: { store: string; runId: string },
  step: RoundContext['step'],
  endpoint: LlmEndpoint,
  cache: boolean | undefined,
): Pick<BatchStep<unknown>, 'ctx' | 'cache'> {
  const section = step === 'score' ? 'input.scorer' : 'input.evaluation';
  const setting = `${section}.mode`;
  if (cache === false) {
    const field = `${section}.cache`;
    throw new InvalidDataError(`${setting} "batch" needs ${field} (the batches fill the cache)`, { field });
  }
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  return {
    ctx: { endpoint, store, runId: input.runId, step, setting, caps: batchCaps(deps.env) },
    cache: answerCache(store, step === 'score' ? 'score' : 'judge', true, true),
  };
}

/**
 * A step's submit and collect activities from its rounds (undefined when the step asks no endpoint, `asksNone` saying
 * which): submit sends round `round`'s batch (or finds the one already sent), no batch id when nothing is left; collect
 * reads round `round`'s finished batch into the answer cache.
 */
export function batchActivities<I extends { round: number }, T>(
  step: (deps: ActivityDeps, input: I) => Promise<BatchStep<T> | undefined> | BatchStep<T> | undefined,
  asksNone: string,
) {
  return {
    submit: async (deps: ActivityDeps, input: I): Promise<BatchSubmitted> => {
      const s = await step(deps, input);
      return s ? submit(s, input.round, deps) : { round: input.round, requests: 0 };
    },
    collect: async (deps: ActivityDeps, input: I & { batchId: string }): Promise<BatchCollected> => {
      const s = await step(deps, input);
      if (!s) throw new Error(`a batch was submitted for ${asksNone}`);
      return collect(s, input.round, input.batchId, deps);
    },
  };
}
