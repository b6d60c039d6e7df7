import { setMaxListeners } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createFakeBatchApi, type FakeBatchApi } from './fake-batches';

/**
 * An OpenAI-compatible chat completions server on loopback whose every answer the test decides, so judge and
 * scorer code can be tested through the real `openai` client: its retries, timeouts and parsing included.
 */

export interface ChatMessage {
  role: string;
  content: unknown;
  [field: string]: unknown;
}

/** What a handler sees of one chat completion request. */
export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  top_p?: number;
  /** `max_tokens`, or `max_completion_tokens` from newer clients. */
  max_tokens?: number;
  n: number;
  /** The whole parsed JSON body. */
  body: Record<string, unknown>;
}

/** Every request that reached the server, answered or not. */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  authorized: boolean;
  /** Set when the body was a valid chat completion request. */
  chat?: ChatRequest;
  rawBody: string;
}

export type Reply =
  /** A normal completion; every one of the `n` choices gets this content. */
  | { content: string; finishReason?: 'stop' | 'length' }
  /** An API error; 429 and 5xx are retried by the client, honouring retry-after(-ms) when given. */
  | { status: number; message?: string; code?: string; retryAfterSeconds?: number; retryAfterMs?: number }
  /** Wait, then answer; a client timeout shorter than the delay sees a timeout. */
  | { delayMs: number; then: Reply }
  /** HTTP 200 with a JSON content type and this (invalid) body. */
  | { garbage: string }
  /** Close the connection without answering. */
  | { hangUp: true };

export type Handler = (req: ChatRequest) => Reply | Promise<Reply>;

/** How the server behaves before any handler sees a request. */
export interface ServerBehaviour {
  /** Every reply, error or not, leaves this long after the request arrived. */
  latencyMs?: number;
  /**
   * A requests-per-minute limit, as a token bucket holding `burst` requests (default one second's worth): a request
   * beyond it is answered 429 with Retry-After (whole seconds, rounded up) and retry-after-ms, without reaching the
   * handler. Every answer carries x-ratelimit-limit-requests, x-ratelimit-remaining-requests and
   * x-ratelimit-reset-requests (time until the bucket is full again, as `1.5s`), as OpenAI's do.
   */
  rateLimit?: { requestsPerMinute: number; burst?: number };
}

export interface FakeOpenAI {
  /** `http://127.0.0.1:PORT/v1`, to pass as the client's `baseURL`. */
  baseURL: string;
  apiKey: string;
  readonly requests: RecordedRequest[];
  handle(handler: Handler): void;
  /** Sets latency and rate limit (replacing earlier ones); reset() clears them. */
  behave(behaviour: ServerBehaviour): void;
  /** Requests answered 429 by the rate limit (they never reach the handler). */
  readonly rateLimited: number;
  /** The Batch API (files and batches endpoints), answering each line with the same handler. */
  readonly batch: FakeBatchApi;
  /** Forgets recorded requests and restores the default handler. */
  reset(): void;
  stop(): Promise<void>;
}

const defaultHandler: Handler = () => ({ content: 'ok' });

export async function startFakeOpenAI(options: { apiKey?: string } & ServerBehaviour = {}): Promise<FakeOpenAI> {
  const apiKey = options.apiKey ?? 'sk-fake-openai';
  const requests: RecordedRequest[] = [];
  let handler = defaultHandler;
  let completions = 0;
  let behaviour: ServerBehaviour = {};
  let bucket: { level: number; at: number } | undefined;
  let rateLimited = 0;
  const batch = createFakeBatchApi(() => handler);
  const behave = (b: ServerBehaviour) => {
    behaviour = { ...b };
    bucket = undefined;
  };
  behave(options);
  /** Takes one request from the bucket: the headers to send, and how long to wait when there was none to take. */
  const admit = (): { headers: Record<string, string>; retryAfterMs?: number } => {
    const limit = behaviour.rateLimit;
    if (!limit) return { headers: {} };
    const perMs = limit.requestsPerMinute / 60_000;
    const capacity = limit.burst ?? Math.max(1, limit.requestsPerMinute / 60);
    const now = Date.now();
    bucket ??= { level: capacity, at: now };
    bucket.level = Math.min(capacity, bucket.level + (now - bucket.at) * perMs);
    bucket.at = now;
    const admitted = bucket.level >= 1;
    if (admitted) bucket.level -= 1;
    const headers = {
      'x-ratelimit-limit-requests': String(limit.requestsPerMinute),
      'x-ratelimit-remaining-requests': String(Math.floor(bucket.level)),
      'x-ratelimit-reset-requests': `${((capacity - bucket.level) / perMs / 1000).toFixed(3)}s`,
    };
    return admitted ? { headers } : { headers, retryAfterMs: Math.ceil((1 - bucket.level) / perMs) };
  };
  // Aborts pending delayed replies so stop() does not wait for them.
  const stopping = new AbortController();
  // Every delayed reply listens on it while it waits: hundreds at once under load.
  setMaxListeners(0, stopping.signal);

  const server = http.createServer((req, res) => {
    readBody(req)
      .then(
        async (rawBytes) => {
          const rawBody = rawBytes.toString('utf8');
          const record: RecordedRequest = {
            method: req.method ?? '',
            path: new URL(req.url ?? '/', 'http://fake').pathname,
            headers: req.headers,
            authorized: req.headers.authorization === `Bearer ${apiKey}`,
            rawBody,
          };
          requests.push(record);
          if (!record.authorized) {
            return sendError(res, 401, 'Incorrect API key provided', 'invalid_request_error');
          }
          const routed = await batch.route(record.method, record.path, req.headers, rawBytes, {
            json: (status, body) => sendJson(res, status, body),
            bytes: (type, body) => void res.writeHead(200, { 'content-type': type }).end(body),
          });
          if (routed) return;
          if (record.path !== '/v1/chat/completions' && record.path !== '/chat/completions') {
            return sendError(res, 404, `no route ${record.path} on the fake OpenAI server`, 'invalid_request_error');
          }
          if (record.method !== 'POST') {
            return sendError(res, 405, `${record.method} not allowed`, 'invalid_request_error');
          }
          const parsed = parseChatRequest(rawBody);
          if (typeof parsed === 'string') {
            return sendError(res, 400, parsed, 'invalid_request_error');
          }
          record.chat = parsed;
          const arrived = Date.now();
          const { headers, retryAfterMs } = admit();
          let reply: Reply;
          if (retryAfterMs !== undefined) {
            rateLimited += 1;
            reply = {
              status: 429,
              message: 'Rate limit reached for requests',
              retryAfterSeconds: Math.ceil(retryAfterMs / 1000),
              retryAfterMs,
            };
          } else {
            try {
              reply = await handler(parsed);
            } catch (err) {
              // Surfaced on the test's console too: a 500 alone would just be retried by the client.
              console.error('fake-openai handler threw:', err);
              return sendError(res, 500, `fake-openai handler threw: ${String(err)}`, 'server_error');
            }
          }
          const latency = (behaviour.latencyMs ?? 0) - (Date.now() - arrived);
          if (latency > 0) await sleep(latency, undefined, { signal: stopping.signal });
          await answer(res, reply, parsed, `chatcmpl-fake-${++completions}`, stopping.signal, headers);
        },
        (err: unknown) => sendError(res, 400, `could not read request: ${String(err)}`, 'invalid_request_error'),
      )
      .catch((err: unknown) => {
        if (!stopping.signal.aborted) {
          console.error('fake-openai failed to answer:', err);
        }
        res.destroy();
      });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;

  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    apiKey,
    requests,
    handle(fn) {
      handler = fn;
    },
    behave,
    get rateLimited() {
      return rateLimited;
    },
    batch,
    reset() {
      requests.length = 0;
      handler = defaultHandler;
      rateLimited = 0;
      behave({});
      batch.reset();
    },
    async stop() {
      stopping.abort();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function answer(
  res: http.ServerResponse,
  reply: Reply,
  req: ChatRequest,
  id: string,
  signal: AbortSignal,
  extraHeaders: Record<string, string> = {},
): Promise<void> {
  if ('delayMs' in reply) {
    await sleep(reply.delayMs, undefined, { signal });
    return answer(res, reply.then, req, id, signal, extraHeaders);
  }
  if (res.destroyed) {
    return; // the client gave up (timeout) while we waited
  }
  if ('hangUp' in reply) {
    res.socket?.destroy();
    return;
  }
  if ('garbage' in reply) {
    res.writeHead(200, { 'content-type': 'application/json', ...extraHeaders }).end(reply.garbage);
    return;
  }
  if ('status' in reply) {
    const headers: Record<string, string> = { ...extraHeaders };
    if (reply.retryAfterSeconds !== undefined) {
      headers['retry-after'] = String(reply.retryAfterSeconds);
    }
    if (reply.retryAfterMs !== undefined) {
      headers['retry-after-ms'] = String(reply.retryAfterMs);
    }
    const type = reply.status === 429 ? 'requests' : reply.status >= 500 ? 'server_error' : 'invalid_request_error';
    sendError(
      res,
      reply.status,
      reply.message ?? `fake error ${reply.status}`,
      reply.code ?? type,
      headers,
      reply.code,
    );
    return;
  }
  const promptTokens = countWords(req.messages.map((m) => (typeof m.content === 'string' ? m.content : '')).join(' '));
  const completionTokens = countWords(reply.content) * req.n;
  sendJson(
    res,
    200,
    {
      id,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: req.model,
      choices: Array.from({ length: req.n }, (_, index) => ({
        index,
        message: { role: 'assistant', content: reply.content, refusal: null },
        logprobs: null,
        finish_reason: reply.finishReason ?? 'stop',
      })),
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens,
      },
      system_fingerprint: null,
    },
    extraHeaders,
  );
}

/** The request as the real API would accept it, or why it would not. */
function parseChatRequest(rawBody: string): ChatRequest | string {
  let body: unknown;
  try {
    body = JSON.parse(rawBody);
  } catch {
    return 'request body is not valid JSON';
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return 'request body must be a JSON object';
  }
  const b = body as Record<string, unknown>;
  if (typeof b.model !== 'string' || b.model === '') {
    return "missing required parameter: 'model'";
  }
  if (!Array.isArray(b.messages) || b.messages.length === 0) {
    return "missing required parameter: 'messages'";
  }
  if (b.stream === true) {
    return 'the fake OpenAI server does not stream';
  }
  return {
    model: b.model,
    messages: b.messages as ChatMessage[],
    temperature: optionalNumber(b.temperature),
    top_p: optionalNumber(b.top_p),
    max_tokens: optionalNumber(b.max_tokens) ?? optionalNumber(b.max_completion_tokens),
    n: optionalNumber(b.n) ?? 1,
    body: b,
  };
}

function sendError(
  res: http.ServerResponse,
  status: number,
  message: string,
  type: string,
  headers: Record<string, string> = {},
  code: string | null = null,
): void {
  sendJson(res, status, { error: { message, type, param: null, code } }, headers);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  if (res.destroyed) {
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function optionalNumber(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

function countWords(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}
