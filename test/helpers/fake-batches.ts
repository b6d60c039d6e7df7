import { randomUUID } from 'node:crypto';
import type * as http from 'node:http';
import type { ChatRequest, Handler, Reply } from './fake-openai';

/**
 * The OpenAI Batch API of the fake server: POST /v1/files (multipart, purpose "batch"), GET /v1/files/:id/content,
 * POST /v1/batches, GET /v1/batches/:id and GET /v1/batches. Each line of a batch is answered by the same handler as
 * a chat completion, so a test scripts its answers once for both paths. A batch moves validating → in_progress →
 * completed (or expired) over successive retrieves, as a real one does over hours.
 */

export type ItemFate = 'answer' | 'fail' | 'expire';

export interface BatchBehaviour {
  /** Retrieves a batch answers `in_progress` before it finishes (the first one answers `validating`). */
  retrievesBeforeDone?: number;
  /** What happens to one line: by default it is answered; `fail` is a 500 in the error file, `expire` is left unfinished. */
  fate?: (customId: string, batchNumber: number) => ItemFate;
  /** The whole batch fails validation: no output file, every line is left unanswered. */
  failBatch?: (batchNumber: number) => boolean;
  /** The endpoint's cap on requests in one batch: a larger one fails validation, as OpenAI's above 50,000. */
  maxRequests?: number;
  /** Lines written after the batch's own in its output and error files (torn lines, another line for a custom_id). */
  extraLines?: (batchNumber: number) => { output?: string[]; errors?: string[] };
}

export interface FakeBatch {
  id: string;
  /** 1 for the first batch the server created, 2 for the next… */
  number: number;
  status: 'validating' | 'in_progress' | 'completed' | 'expired' | 'failed';
  inputFileId: string;
  endpoint: string;
  completionWindow: string;
  metadata: Record<string, string> | null;
  retrieves: number;
  outputFileId?: string;
  errorFileId?: string;
  counts: { total: number; completed: number; failed: number };
  createdAt: number;
}

export interface FakeFile {
  id: string;
  purpose: string;
  filename: string;
  text: string;
}

export interface FakeBatchApi {
  readonly batches: FakeBatch[];
  readonly files: Map<string, FakeFile>;
  behave(b: BatchBehaviour): void;
  reset(): void;
  /** Answers the request when it is for the files or batches endpoints; false when it is not. */
  route(
    method: string,
    path: string,
    headers: http.IncomingHttpHeaders,
    rawBody: Buffer,
    res: Reply$,
  ): Promise<boolean>;
}

/** How the batch routes answer: JSON with a status, or bytes. */
export interface Reply$ {
  json(status: number, body: unknown): void;
  bytes(contentType: string, body: string): void;
}

const now = () => Math.floor(Date.now() / 1000);

export function createFakeBatchApi(handler: () => Handler): FakeBatchApi {
  const batches: FakeBatch[] = [];
  const files = new Map<string, FakeFile>();
  let behaviour: BatchBehaviour = {};

  const error = (res: Reply$, status: number, message: string) =>
    res.json(status, { error: { message, type: 'invalid_request_error', param: null, code: null } });

  const batchObject = (b: FakeBatch) => ({
    id: b.id,
    object: 'batch',
    endpoint: b.endpoint,
    errors: null,
    input_file_id: b.inputFileId,
    completion_window: b.completionWindow,
    status: b.status,
    output_file_id: b.outputFileId ?? null,
    error_file_id: b.errorFileId ?? null,
    created_at: b.createdAt,
    metadata: b.metadata,
    request_counts: b.counts,
  });

  const addFile = (purpose: string, filename: string, text: string): FakeFile => {
    const file = { id: `file-${randomUUID().slice(0, 12)}`, purpose, filename, text };
    files.set(file.id, file);
    return file;
  };

  /** Runs every line through the handler and writes the output and error files. */
  async function finish(b: FakeBatch) {
    const lines = files
      .get(b.inputFileId)!
      .text.split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as { custom_id: string; body: Record<string, unknown> });
    b.counts.total = lines.length;
    if (behaviour.failBatch?.(b.number) || lines.length > (behaviour.maxRequests ?? Infinity)) {
      b.status = 'failed';
      return;
    }
    const output: string[] = [];
    const errors: string[] = [];
    let expired = false;
    for (const line of lines) {
      const fate = behaviour.fate?.(line.custom_id, b.number) ?? 'answer';
      const requestId = `req_${randomUUID().slice(0, 8)}`;
      if (fate === 'expire') {
        expired = true;
        errors.push(
          JSON.stringify({
            id: `batch_req_${randomUUID().slice(0, 8)}`,
            custom_id: line.custom_id,
            response: null,
            error: {
              code: 'batch_expired',
              message: 'This request could not be executed before the completion window expired.',
            },
          }),
        );
        continue;
      }
      let reply: Reply =
        fate === 'fail'
          ? { status: 500, message: 'The server had an error processing your request.' }
          : await answerOf(line.body);
      while ('delayMs' in reply) reply = reply.then;
      let status = 200;
      let body: unknown;
      if ('content' in reply) {
        body = completion(line.body, reply.content);
      } else if ('status' in reply) {
        status = reply.status;
        body = {
          error: {
            message: reply.message ?? `fake error ${reply.status}`,
            type: 'server_error',
            code: reply.code ?? null,
          },
        };
      } else {
        status = 500;
        body = { error: { message: 'fake garbage', type: 'server_error', code: null } };
      }
      const entry = JSON.stringify({
        id: `batch_req_${randomUUID().slice(0, 8)}`,
        custom_id: line.custom_id,
        response: { status_code: status, request_id: requestId, body },
        error: null,
      });
      (status === 200 ? output : errors).push(entry);
    }
    b.counts.completed = output.length;
    b.counts.failed = errors.length;
    const extra = behaviour.extraLines?.(b.number);
    output.push(...(extra?.output ?? []));
    errors.push(...(extra?.errors ?? []));
    if (output.length) b.outputFileId = addFile('batch_output', 'output.jsonl', `${output.join('\n')}\n`).id;
    if (errors.length) b.errorFileId = addFile('batch_output', 'errors.jsonl', `${errors.join('\n')}\n`).id;
    b.status = expired ? 'expired' : 'completed';
  }

  async function answerOf(body: Record<string, unknown>): Promise<Reply> {
    const req: ChatRequest = {
      model: String(body.model),
      messages: body.messages as ChatRequest['messages'],
      temperature: typeof body.temperature === 'number' ? body.temperature : undefined,
      top_p: typeof body.top_p === 'number' ? body.top_p : undefined,
      max_tokens: typeof body.max_tokens === 'number' ? body.max_tokens : undefined,
      n: typeof body.n === 'number' ? body.n : 1,
      body,
    };
    return handler()(req);
  }

  return {
    batches,
    files,
    behave(b) {
      behaviour = { ...b };
    },
    reset() {
      batches.length = 0;
      files.clear();
      behaviour = {};
    },
    async route(method, path, headers, rawBody, res) {
      if (method === 'POST' && path === '/v1/files') {
        const form = await new Response(new Uint8Array(rawBody), {
          headers: { 'content-type': String(headers['content-type'] ?? '') },
        }).formData();
        const file = form.get('file');
        const purpose = form.get('purpose');
        if (!(file instanceof Blob) || purpose !== 'batch') {
          error(res, 400, 'a file and purpose "batch" are required');
          return true;
        }
        const stored = addFile('batch', (file as File).name ?? 'upload.jsonl', await file.text());
        res.json(200, {
          id: stored.id,
          object: 'file',
          bytes: Buffer.byteLength(stored.text),
          created_at: now(),
          filename: stored.filename,
          purpose: 'batch',
          status: 'processed',
        });
        return true;
      }
      const content = /^\/v1\/files\/([^/]+)\/content$/.exec(path);
      if (method === 'GET' && content) {
        const file = files.get(content[1]);
        if (!file) error(res, 404, `no file ${content[1]}`);
        else res.bytes('application/octet-stream', file.text);
        return true;
      }
      if (method === 'POST' && path === '/v1/batches') {
        const body = JSON.parse(rawBody.toString('utf8')) as Record<string, unknown>;
        if (!files.has(String(body.input_file_id))) {
          error(res, 400, `no file ${String(body.input_file_id)}`);
          return true;
        }
        if (body.endpoint !== '/v1/chat/completions' || body.completion_window !== '24h') {
          error(res, 400, 'endpoint must be /v1/chat/completions and completion_window 24h');
          return true;
        }
        const b: FakeBatch = {
          id: `batch_${randomUUID().slice(0, 12)}`,
          number: batches.length + 1,
          status: 'validating',
          inputFileId: String(body.input_file_id),
          endpoint: String(body.endpoint),
          completionWindow: String(body.completion_window),
          metadata: (body.metadata as Record<string, string> | undefined) ?? null,
          retrieves: 0,
          counts: { total: 0, completed: 0, failed: 0 },
          createdAt: now(),
        };
        batches.push(b);
        res.json(200, batchObject(b));
        return true;
      }
      if (method === 'GET' && path === '/v1/batches') {
        const data = [...batches].reverse().map(batchObject);
        res.json(200, {
          object: 'list',
          data,
          first_id: data[0]?.id ?? null,
          last_id: data.at(-1)?.id ?? null,
          has_more: false,
        });
        return true;
      }
      const one = /^\/v1\/batches\/([^/]+)$/.exec(path);
      if (method === 'GET' && one) {
        const b = batches.find((x) => x.id === one[1]);
        if (!b) {
          error(res, 404, `no batch ${one[1]}`);
          return true;
        }
        b.retrieves += 1;
        if (b.status === 'validating' && b.retrieves > 1) b.status = 'in_progress';
        if (b.status === 'in_progress' && b.retrieves > 1 + (behaviour.retrievesBeforeDone ?? 1)) await finish(b);
        res.json(200, batchObject(b));
        return true;
      }
      return false;
    },
  };
}

function completion(body: Record<string, unknown>, content: string) {
  return {
    id: `chatcmpl-batch-${randomUUID().slice(0, 8)}`,
    object: 'chat.completion',
    created: now(),
    model: body.model,
    choices: [
      { index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' },
    ],
    usage: { prompt_tokens: 10, completion_tokens: 1, total_tokens: 11 },
  };
}
