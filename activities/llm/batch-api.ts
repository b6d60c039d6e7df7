import { createReadStream, createWriteStream, openAsBlob } from 'node:fs';
import { open, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { Batch } from 'openai/resources/batches';
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { InvalidDataError } from '../../common/failures';
import { inScratch } from '../artifacts/scratch';
import { IdTable } from '../datasets/id-table';
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
 * Uploads `range` of the request file at `path`, read again on each try and streamed from the disk as it is sent: the
 * SDK's toFile would first read all of it (up to a batch's 200 MB) into memory.
 */
export async function uploadBatchFile(
  endpoint: LlmEndpoint,
  path: string,
  range: { start: number; end: number },
  setting: string,
): Promise<string> {
  const file = await callBatchApi(endpoint, setting, 'POST /files', async (signal) => {
    const blob = (await openAsBlob(path)).slice(range.start, range.end);
    return endpoint.client.files.create({ file: new File([blob], 'batch.jsonl'), purpose: 'batch' }, { signal });
  });
  return file.id;
}

export const createBatch = (
  endpoint: LlmEndpoint,
  inputFileId: string,
  metadata: Record<string, string>,
  setting: string,
) =>
  callBatchApi(endpoint, setting, 'POST /batches', (signal) =>
    endpoint.client.batches.create(
      { input_file_id: inputFileId, endpoint: '/v1/chat/completions', completion_window: '24h', metadata },
      { signal },
    ),
  );

/**
 * A batch this step created earlier and did not get to record (the attempt died between creating and storing it),
 * found by its metadata among the newest batches; undefined when there is none or the endpoint cannot list them.
 */
export async function findBatch(
  endpoint: LlmEndpoint,
  metadata: Record<string, string>,
  setting: string,
): Promise<Batch | undefined> {
  const matches = (b: Batch) => Object.entries(metadata).every(([k, v]) => b.metadata?.[k] === v);
  try {
    return await callBatchApi(endpoint, setting, 'GET /batches', async (signal) => {
      let seen = 0;
      for await (const b of endpoint.client.batches.list({ limit: 100 }, { signal })) {
        if (matches(b)) return b;
        if (++seen >= 1000) break;
      }
      return undefined;
    });
  } catch (err) {
    if (err instanceof InvalidDataError) return undefined;
    throw err;
  }
}

export const retrieveBatch = (endpoint: LlmEndpoint, batchId: string, setting: string): Promise<Batch> =>
  callBatchApi(endpoint, setting, `GET /batches/${batchId}`, (signal) =>
    endpoint.client.batches.retrieve(batchId, { signal }),
  );

/** Downloads a file of the batch to `path`, as it arrives. */
async function downloadFile(endpoint: LlmEndpoint, fileId: string, path: string, setting: string): Promise<void> {
  await callBatchApi(endpoint, setting, `GET /files/${fileId}/content`, async (signal) => {
    const response = await endpoint.client.files.content(fileId, { signal });
    if (!response.body) return writeFile(path, '');
    await pipeline(Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>), createWriteStream(path));
  });
}

/** A line of an output or error file. */
interface ResultLine {
  custom_id?: string;
  response?: { status_code?: number; body?: unknown } | null;
  error?: { code?: string; message?: string } | null;
}

/** Each line of a local file with the byte offset it starts at, read a chunk at a time. */
async function* linesWithOffsets(path: string): AsyncGenerator<{ line: Buffer; offset: number }> {
  let pending = Buffer.alloc(0);
  let offset = 0;
  for await (const chunk of createReadStream(path)) {
    const data = pending.length ? Buffer.concat([pending, chunk as Buffer]) : (chunk as Buffer);
    let from = 0;
    for (let nl = data.indexOf(0x0a); nl !== -1; nl = data.indexOf(0x0a, from)) {
      yield { line: data.subarray(from, nl), offset: offset + from };
      from = nl + 1;
    }
    offset += from;
    pending = Buffer.from(data.subarray(from));
  }
  if (pending.length) yield { line: pending, offset };
}

const parsedLine = (line: Buffer): ResultLine | undefined => {
  try {
    const parsed = JSON.parse(line.toString('utf8')) as ResultLine;
    return typeof parsed.custom_id === 'string' ? parsed : undefined;
  } catch {
    return undefined; // an unreadable line names no request: that request is asked again
  }
};

/**
 * The outcome of each of the next `count` lines of a round's request file (batchLine) read from `requests`, in order,
 * handed to `write` one at a time, from a finished batch: its output and error files are downloaded to `workDir` and
 * each custom_id is kept with where its line is (a later line for the same id wins, the error file after the output
 * file), so only one result line is in memory at a time. A request neither file names (a failed or cancelled batch) is
 * to be asked again.
 */
export async function batchOutcomes(
  endpoint: LlmEndpoint,
  batch: Batch,
  { requests, count }: { requests: AsyncIterator<{ custom_id: string }>; count: number },
  setting: string,
  workDir: string,
  write: (outcome: BatchOutcome) => Promise<void>,
): Promise<void> {
  await inScratch(workDir, 'batch-results-', async (dir) => {
    const handles: FileHandle[] = [];
    try {
      const ids = new IdTable();
      // Where each request's line is: its file, its offset and its length.
      const [fileOf, offsets, lengths]: number[][] = [[], [], []];
      for (const fileId of [batch.output_file_id, batch.error_file_id]) {
        if (!fileId) continue;
        const path = join(dir, `${handles.length}.jsonl`);
        await downloadFile(endpoint, fileId, path, setting);
        for await (const { line, offset } of linesWithOffsets(path)) {
          const parsed = parsedLine(line);
          if (!parsed) continue;
          const entry = ids.firstLine(parsed.custom_id!, offsets.length) ?? offsets.length;
          [fileOf[entry], offsets[entry], lengths[entry]] = [handles.length, offset, line.length];
        }
        handles.push(await open(path, 'r'));
      }
      for (let n = 0, next; n < count && !(next = await requests.next()).done; n++) {
        const id = next.value.custom_id;
        const entry = ids.lineOf(id);
        if (entry === undefined) {
          await write({ customId: id, retry: `no result in batch ${batch.id} (${batch.status})` });
          continue;
        }
        const bytes = Buffer.alloc(lengths[entry]);
        await handles[fileOf[entry]].read(bytes, 0, bytes.length, offsets[entry]);
        await write(outcomeOf(id, parsedLine(bytes)!));
      }
    } finally {
      await Promise.all(handles.map((h) => h.close()));
    }
  });
}

function outcomeOf(customId: string, line: ResultLine): BatchOutcome {
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
