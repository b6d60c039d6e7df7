import { Context } from '@temporalio/activity';
import OpenAI from 'openai';
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { InvalidDataError, WorkerMisconfiguredError } from '../../common/failures';
import { workerDefaults } from '../worker-defaults';
import { outageToleranceMs, waitOutOutages } from '../../store/outage';
import { requestTokens, type SpendMeter } from './cost-estimate';
import { RateGate, type RateBudget } from './rate-gate';

export interface LlmEndpoint {
  client: OpenAI;
  baseURL: string;
  /** The environment variables the URL and the key came from, named when they are wrong. */
  urlSetting: string;
  keySetting: string;
  /** How long an outage of the endpoint is waited out (PIFT_OUTAGE_TOLERANCE). */
  outageToleranceMs: number;
  /** The step's request and token budget, fed by every HTTP response the client sees (its own retries included). */
  gate: RateGate;
  /** The step's spending limit, fed by every reply's `usage`. */
  meter?: SpendMeter;
}

export interface EndpointOptions {
  maxRetries: number;
  timeoutSeconds: number;
  budget?: RateBudget;
  meter?: SpendMeter;
}

/**
 * The OpenAI-compatible endpoint configured in the worker's environment, or undefined for offline mode.
 * Base URL and key never come from workflow input, so they never reach history, logs or artifacts.
 */
export function llmEndpoint(env: NodeJS.ProcessEnv, opts: EndpointOptions): LlmEndpoint | undefined {
  const baseURL = env.PIFT_OPENAI_BASE_URL ?? env.OPENAI_BASE_URL;
  const apiKey = env.PIFT_OPENAI_API_KEY ?? env.OPENAI_API_KEY;
  const urlSetting = env.PIFT_OPENAI_BASE_URL || !env.OPENAI_BASE_URL ? 'PIFT_OPENAI_BASE_URL' : 'OPENAI_BASE_URL';
  const keySetting = env.PIFT_OPENAI_API_KEY ? 'PIFT_OPENAI_API_KEY' : 'OPENAI_API_KEY';
  if (!baseURL && !apiKey) return undefined;
  const gate = new RateGate(opts.budget);
  return {
    // The client retries 408/409/429/5xx and connection errors with exponential backoff, honouring Retry-After.
    client: new OpenAI({
      baseURL,
      apiKey: apiKey ?? 'unset',
      maxRetries: opts.maxRetries,
      timeout: opts.timeoutSeconds * 1000,
      // Every response, the ones the client retries on its own included, tells the gate about the endpoint's limits;
      // the client's own retries wait for their turn too (the first send waited in `complete`).
      fetch: async (url: string | URL | Request, init?: RequestInit) => {
        if (retryCount(init?.headers) > 0) {
          const body = typeof init?.body === 'string' ? init.body.length : 0;
          await gate.acquire(Math.ceil(body / 4), init?.signal ?? undefined);
        }
        const response = await fetch(url, init);
        gate.observe(response.status, response.headers);
        return response;
      },
    }),
    baseURL: baseURL ?? 'https://api.openai.com/v1',
    urlSetting,
    keySetting,
    outageToleranceMs: outageToleranceMs(env),
    gate,
    ...(opts.meter && { meter: opts.meter }),
  };
}

/** Which send of a request this is, as the client numbers it (0: the first). */
function retryCount(headers: ConstructorParameters<typeof Headers>[0]): number {
  // The client hands over a Headers object: read it as it is, not through a copy of every header.
  const all = headers instanceof Headers ? headers : new Headers(headers);
  return Number(all.get('x-stainless-retry-count') ?? 0);
}

/**
 * The endpoint a step uses: none for 'offline', the environment's for 'auto' when there is one, and for 'openai' the
 * environment's or a non-retryable error naming the setting.
 */
export function endpointFor(
  kind: 'auto' | 'openai' | 'offline',
  setting: string,
  env: NodeJS.ProcessEnv,
  opts: EndpointOptions,
): LlmEndpoint | undefined {
  const endpoint = kind === 'offline' ? undefined : llmEndpoint(env, opts);
  if (kind === 'openai' && !endpoint) {
    throw new InvalidDataError(`${setting} is "openai" but the worker has no PIFT_OPENAI_BASE_URL / OPENAI_API_KEY`, {
      field: setting,
    });
  }
  return endpoint;
}

/** Whether a step of this kind asks the endpoint: `offline`, `file` and `ifd` never do, `auto` when the worker has one. */
export function asksEndpoint(kind: string, env: NodeJS.ProcessEnv): boolean {
  if (kind === 'offline' || kind === 'file' || kind === 'ifd') return false;
  return kind === 'openai' || llmEndpoint(env, { maxRetries: 0, timeoutSeconds: 1 }) !== undefined;
}

/** Model names may come from the input (not secret); the environment gives the deployment's default. */
const modelFrom =
  (kind: 'scorerModel' | 'judgeModel', envSetting: string, inputSetting: string) =>
  (env: NodeJS.ProcessEnv, fromInput?: string): ModelSource =>
    fromInput === undefined
      ? { model: workerDefaults(env)[kind], setting: envSetting }
      : { model: fromInput, setting: inputSetting };
export const scorerModel = modelFrom('scorerModel', 'PIFT_SCORER_MODEL', 'input.scorer.model');
export const judgeModel = modelFrom('judgeModel', 'PIFT_JUDGE_MODEL', 'input.evaluation.judgeModel');

/**
 * Where the setup is first checked (preflight, `pift validate`): one cheap GET proves the endpoint answers at all (any
 * HTTP status will do). An endpoint that refuses connections, times out or does not resolve for the probe's few
 * seconds is a wrong setting, named at once, instead of the client's retries ending minutes later in "Connection
 * error.". Steps do not probe: they wait outages out (see `complete`).
 */
export async function probeEndpoint(endpoint: LlmEndpoint): Promise<void> {
  const url = endpoint.baseURL;
  await waitOutOutages(
    async () => {
      await (await fetch(url, { signal: AbortSignal.timeout(5_000) })).arrayBuffer();
    },
    {
      endpoint: `the LLM endpoint ${url}`,
      setting: endpoint.urlSetting,
      operation: `GET ${url}`,
      toleranceMs: endpoint.outageToleranceMs,
      probe: 'fail-fast',
    },
  );
}

/** Where a model name came from: the input's field, or the worker variable that supplied the default. */
export interface ModelSource {
  model: string;
  /** `input.scorer.model`, or `PIFT_SCORER_MODEL` when the input left it to the worker. */
  setting: string;
}

/** How `complete` and `callBatchApi` wait out an outage of the endpoint. */
const outages = (endpoint: LlmEndpoint, operation: string) => ({
  endpoint: `the LLM endpoint ${endpoint.baseURL}`,
  setting: endpoint.urlSetting,
  operation,
  toleranceMs: endpoint.outageToleranceMs,
  isTransient: isLlmTransient,
});

/** Statuses worth waiting out once the client's own retries are spent. */
const RETRY_LATER = new Set([408, 409, 429, 500, 502, 503, 504]);

/** A connection fault, a timeout, an overloaded or throttling endpoint: an outage. Not an exhausted quota. */
function isLlmTransient(err: unknown): boolean {
  if (err instanceof OpenAI.APIUserAbortError) return false;
  if (err instanceof OpenAI.APIConnectionError) return true;
  return err instanceof OpenAI.APIError && err.status !== undefined && RETRY_LATER.has(err.status);
}

/**
 * One chat completion, aborted when the activity is cancelled. It waits for its turn in the step's budget (`gate`)
 * first. Transport faults are retried by the client first; a 429 that outlasts them is a rate limit, not an outage:
 * the request waits for the gate (which honours Retry-After and the x-ratelimit headers) and is sent again, for as long
 * as the endpoint keeps answering other requests within PIFT_OUTAGE_TOLERANCE. What else still fails that way
 * (connection errors, timeouts, 5xx) is an outage, waited out here with heartbeats for up to PIFT_OUTAGE_TOLERANCE.
 * A key the endpoint refuses or an exhausted quota is the worker's to fix, a model it does not have is whoever named
 * the model (retrying fixes neither); a single request it rejects (400/422, e.g. a content filter) is returned as
 * `rejected`, for the caller to record against that row.
 */
export async function complete(
  endpoint: LlmEndpoint,
  params: ChatCompletionCreateParamsNonStreaming,
  modelSetting: string,
): Promise<{ content: string } | { rejected: string }> {
  const operation = `POST ${endpoint.baseURL}/chat/completions`;
  const tokens = requestTokens(params.messages, params.max_tokens);
  // The gate's budget counts the reply at its cap, or at 256 tokens when the request sets none.
  const cost = tokens.prompt + (params.max_tokens ?? 256);
  return waitOutOutages(
    async () => {
      for (;;) {
        // A request that could pass the step's spending limit is never sent (a non-retryable error naming it).
        const reserved = endpoint.meter?.admit(tokens);
        let replied: ChatCompletion | undefined;
        try {
          replied = await withActivitySignal(async (signal) => {
            await endpoint.gate.acquire(cost, signal);
            return endpoint.client.chat.completions.create(params, { signal });
          });
          return { content: replied.choices?.[0]?.message?.content ?? '' };
        } catch (err) {
          const status = err instanceof OpenAI.APIError ? err.status : undefined;
          if (status === 400 || status === 422)
            return { rejected: `HTTP ${status}: ${redacted(endpoint, err as Error)}` };
          const typed = classify(endpoint, err, params.model, modelSetting, operation);
          if (typed) throw typed;
          // The gate saw this 429 (and its Retry-After) on its way through the client: the next turn waits for it.
          if (status === 429 && Date.now() - endpoint.gate.lastAnswerAt < endpoint.outageToleranceMs) continue;
          throw err;
        } finally {
          if (reserved) endpoint.meter!.settle(reserved, replied ?? 'failed');
        }
      }
    },
    outages(endpoint, operation),
  );
}

/**
 * [ours] What to send after an unparseable reply (none yet: the request itself): at temperature 0 the same request
 * would get the same reply, so the model sees its reply and a corrective turn. One rule for scoring and judging,
 * online and through the Batch API.
 */
export function askAgain(
  request: ChatCompletionCreateParamsNonStreaming,
  unparsed: string | undefined,
  correction: string,
): ChatCompletionCreateParamsNonStreaming {
  if (unparsed === undefined) return request;
  const turns = [{ role: 'assistant', content: unparsed } as const, { role: 'user', content: correction } as const];
  return { ...request, messages: [...request.messages, ...turns] };
}

/**
 * Asks, then asks again while `parsed` refuses the reply, at most `retries` times more; `ask` gets the previous reply
 * (none on the first ask). One loop for the scoring and judging pools; `reasked`: the asks beyond the first.
 */
export async function askUntilParsed<R>(
  ask: (previous: R | undefined) => Promise<R>,
  parsed: (reply: R) => boolean,
  retries: number,
): Promise<{ reply: R; reasked: number }> {
  for (let reasked = 0, previous: R | undefined; ; reasked++) {
    const reply = await ask(previous);
    if (parsed(reply) || reasked >= retries) return { reply, reasked };
    previous = reply;
  }
}

/**
 * One call of the Batch API (its files and batches), `request` being its method and path: outages are waited out as
 * `complete` waits them out, a refused key or a spent quota is the worker's to fix, and a 404 is an endpoint without
 * the Batch API (not an outage), named with `setting`, the step's batch mode.
 */
export function callBatchApi<T>(
  endpoint: LlmEndpoint,
  setting: string,
  request: string,
  call: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const [method, path] = request.split(' ');
  const operation = `${method} ${endpoint.baseURL}${path}`;
  return waitOutOutages(
    async () => {
      try {
        return await withActivitySignal(call);
      } catch (err) {
        if (err instanceof OpenAI.APIError && err.status === 404) {
          throw new InvalidDataError(
            `${setting} is "batch" but the LLM endpoint ${endpoint.baseURL} (${endpoint.urlSetting}) answered HTTP 404 ` +
              `for ${operation}: it has no Batch API (${redacted(endpoint, err)}); use the online mode with this endpoint`,
            { field: setting },
          );
        }
        throw classify(endpoint, err, '', endpoint.urlSetting, operation) ?? err;
      }
    },
    outages(endpoint, operation),
  );
}

/** The requests in flight of each activity, aborted together by one listener on its cancellation signal. */
const requestsOf = new WeakMap<AbortSignal, Set<AbortController>>();

/**
 * Runs one send with a signal of its own that the activity's cancellation aborts. The client adds a listener to the
 * signal it is given and never removes it: given the activity's, a step would leave one there per request, and given
 * one per request, a request sent again (a rate limit or an outage waited out) would pile them up on it.
 */
async function withActivitySignal<T>(send: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const cancelled = Context.current().cancellationSignal;
  let requests = requestsOf.get(cancelled);
  if (!requests) {
    const mine = (requests = new Set<AbortController>());
    requestsOf.set(cancelled, mine);
    cancelled.addEventListener('abort', () => mine.forEach((c) => c.abort(cancelled.reason)), { once: true });
  }
  const controller = new AbortController();
  if (cancelled.aborted) controller.abort(cancelled.reason);
  requests.add(controller);
  try {
    return await send(controller.signal);
  } finally {
    requests.delete(controller);
  }
}

/** The typed error for a reply retrying cannot fix, or undefined. */
function classify(endpoint: LlmEndpoint, err: unknown, model: string, setting: string, tried: string) {
  if (!(err instanceof OpenAI.APIError) || err.status === undefined) return undefined;
  const { status, code, type } = err;
  // The key's account to fix. The provider's message is left out: OpenAI's quotes the start and the end of the key.
  const keyFault =
    status === 401 || status === 403
      ? `refused the worker's API key (HTTP ${status}): check ${endpoint.keySetting} (and ${endpoint.urlSetting} if ` +
        'it points at the wrong service)'
      : status === 429 && (code === 'insufficient_quota' || type === 'insufficient_quota')
        ? `says the account of ${endpoint.keySetting} has no quota left (HTTP 429 insufficient_quota): add credit ` +
          'or use another key'
        : undefined;
  if (keyFault) {
    return new WorkerMisconfiguredError(`the LLM endpoint ${endpoint.baseURL} ${keyFault}`, endpoint.keySetting, tried);
  }
  if (err.status === 404) {
    const reason = redacted(endpoint, err);
    const modelNamed = err.code === 'model_not_found' || reason.includes(model);
    if (!modelNamed && !/\/v\d[^/]*(\/|$)/.test(new URL(endpoint.baseURL).pathname)) {
      return new WorkerMisconfiguredError(
        `the LLM endpoint answered HTTP 404 for ${tried}: ${endpoint.urlSetting}=${endpoint.baseURL} likely lacks ` +
          `its /v1 suffix (${reason})`,
        endpoint.urlSetting,
        tried,
      );
    }
    const message =
      `${setting}: the LLM endpoint ${endpoint.baseURL} has no model "${model}" (HTTP 404: ${reason})` +
      (modelNamed ? '' : `; or ${endpoint.urlSetting} does not point at its OpenAI-compatible API`);
    return setting.startsWith('input.')
      ? new InvalidDataError(message, { field: setting })
      : new WorkerMisconfiguredError(message, setting, tried);
  }
  return undefined;
}

/**
 * The provider's message without anything that could be a key or a piece of one: `sk-…` tokens, and any token that
 * is part of the worker's key or ends like it (providers quote a key as its start and its last 4 characters).
 */
function redacted(endpoint: LlmEndpoint, err: Error): string {
  const key = endpoint.client.apiKey ?? '';
  const tail = key.length >= 8 ? key.slice(-4) : undefined;
  return err.message.replace(/[\w*+/=-]{4,}/g, (token) =>
    /^sk-/.test(token) ||
    (tail !== undefined && token.endsWith(tail)) ||
    (key.length >= 8 && token.length >= 6 && key.includes(token))
      ? '[redacted]'
      : token,
  );
}
