import { createWriteStream, openAsBlob } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { Batch } from 'openai/resources/batches';
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { InvalidDataError } from '../../common/failures';
import { callBatchApi, type LlmEndpoint } from './llm-client';

/**
 * The OpenAI Batch API through the `openai` package: a JSONL file of chat completion requests is uploaded
 * (`purpose: "batch"`), a batch is created on it with a 24-hour window, and its output and error files map every
 * answer back to the request's `custom_id`. Batches cost less (often half) and take up to a day.
 */

/** One request of a batch, as a line of its input file. */
export interface BatchItem {
  customId: string;
  request: ChatCompletionCreateParamsNonStreaming;
}

/**
 * What became of one request: an answer, a rejection of the request itself (400/422, recorded against it as the
 * online path records it), or nothing yet (failed on the endpoint's side, expired, or missing): ask it again.
 */
export type BatchOutcome =
  | { customId: string; content: string; usage?: { prompt_tokens?: number; completion_tokens?: number } }
  | { customId: string; rejected: string }
  | { customId: string; retry: string };

/** Statuses after which a batch changes no more. */
const FINISHED: ReadonlySet<string> = new Set(['completed', 'failed', 'expired', 'cancelled']);
export const batchFinished = (status: string): boolean => FINISHED.has(status);

/** One line of a batch's input file (without its line break). */
export const batchLine = (i: BatchItem): string =>
  JSON.stringify({ custom_id: i.customId, method: 'POST', url: '/v1/chat/completions', body: i.request });

/**
 * The Batch API calls of a step, each through callBatchApi (outages waited out, errors named with `setting`, the
 * step's batch mode).
 */
export function batchApi(endpoint: LlmEndpoint, setting: string) {
  const call = <T>(request: string, send: (signal: AbortSignal) => Promise<T>) =>
    callBatchApi(endpoint, setting, request, send);
  const { files, batches } = endpoint.client;
  return {
    /**
     * Uploads `range` of the request file at `path`, read again on each try and streamed from the disk as it is sent:
     * the SDK's toFile would first read all of it (up to a batch's 200 MB) into memory.
     */
    upload: async (path: string, range: { start: number; end: number }): Promise<string> => {
      const file = await call('POST /files', async (signal) => {
        const blob = (await openAsBlob(path)).slice(range.start, range.end);
        return files.create({ file: new File([blob], 'batch.jsonl'), purpose: 'batch' }, { signal });
      });
      return file.id;
    },
    create: (inputFileId: string, metadata: Record<string, string>) =>
      call('POST /batches', (signal) =>
        batches.create(
          { input_file_id: inputFileId, endpoint: '/v1/chat/completions', completion_window: '24h', metadata },
          { signal },
        ),
      ),
    /**
     * A batch this step created earlier and did not get to record (the attempt died between creating and storing
     * it), found by its metadata among the newest batches; undefined when there is none or the endpoint cannot list
     * them.
     */
    find: async (metadata: Record<string, string>): Promise<Batch | undefined> => {
      const matches = (b: Batch) => Object.entries(metadata).every(([k, v]) => b.metadata?.[k] === v);
      try {
        return await call('GET /batches', async (signal) => {
          let seen = 0;
          for await (const b of batches.list({ limit: 100 }, { signal })) {
            if (matches(b)) return b;
            if (++seen >= 1000) break;
          }
          return undefined;
        });
      } catch (err) {
        if (err instanceof InvalidDataError) return undefined;
        throw err;
      }
    },
    retrieve: (batchId: string): Promise<Batch> =>
      call(`GET /batches/${batchId}`, (signal) => batches.retrieve(batchId, { signal })),
    /** Downloads a file of a batch to `path`, as it arrives. */
    download: (fileId: string, path: string): Promise<void> =>
      call(`GET /files/${fileId}/content`, async (signal) => {
        const response = await files.content(fileId, { signal });
        if (!response.body) return writeFile(path, '');
        await pipeline(Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>), createWriteStream(path));
      }),
  };
}

/** A line of an output or error file. */
interface ResultLine {
  custom_id?: string;
  response?: { status_code?: number; body?: unknown } | null;
  error?: { code?: string; message?: string } | null;
}

/** What became of a request, from its line of a batch's output or error file (JSON text). */
export function outcomeOf(customId: string, text: string): BatchOutcome {
  let line: ResultLine;
  try {
    line = JSON.parse(text) as ResultLine;
  } catch {
    // A line the row engine's JSON reader takes (it allows trailing commas, NaN) and JSON does not: asked again.
    return { customId, retry: 'an unreadable result line' };
  }
  const status = line.response?.status_code;
  const body = line.response?.body as
    | {
        choices?: Array<{ message?: { content?: string | null } }>;
        usage?: { prompt_tokens?: number; completion_tokens?: number };
        error?: { message?: string };
      }
    | undefined;
  if (status === 200 && body?.choices) {
    return { customId, content: body.choices[0]?.message?.content ?? '', ...(body.usage && { usage: body.usage }) };
  }
  // The same rule as the online path: a request the endpoint rejects is that request's fault, recorded against it.
  if (status === 400 || status === 422) return { customId, rejected: `HTTP ${status}: ${body?.error?.message ?? ''}` };
  if (status !== undefined) return { customId, retry: `HTTP ${status}: ${body?.error?.message ?? ''}` };
  return { customId, retry: line.error?.code ?? line.error?.message ?? 'no response' };
}
