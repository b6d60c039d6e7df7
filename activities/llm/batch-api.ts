import { toFile } from 'openai';
import type { Batch } from 'openai/resources/batches';
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { InvalidDataError } from '../../common/failures';
import { callEndpoint, type LlmEndpoint } from './llm-client';

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

export type BatchStatus = Batch['status'];
/** Statuses after which a batch changes no more. */
const FINISHED: ReadonlySet<string> = new Set(['completed', 'failed', 'expired', 'cancelled']);
export const batchFinished = (status: string): boolean => FINISHED.has(status);

const notSupported = (endpoint: LlmEndpoint, setting: string, operation: string) => (reason: string) =>
  new InvalidDataError(
    `${setting} is "batch" but the LLM endpoint ${endpoint.baseURL} (${endpoint.urlSetting}) answered HTTP 404 for ` +
      `${operation}: it has no Batch API (${reason}); use the online mode with this endpoint`,
    { field: setting },
  );

/** The input file's text: one JSON request per line. */
export const batchJsonl = (items: BatchItem[]): string =>
  items
    .map((i) => JSON.stringify({ custom_id: i.customId, method: 'POST', url: '/v1/chat/completions', body: i.request }))
    .join('\n') + '\n';

export async function uploadBatchFile(endpoint: LlmEndpoint, jsonl: string, setting: string): Promise<string> {
  const op = `POST ${endpoint.baseURL}/files`;
  const file = await callEndpoint(
    endpoint,
    op,
    async (signal) =>
      endpoint.client.files.create(
        { file: await toFile(Buffer.from(jsonl, 'utf8'), 'batch.jsonl'), purpose: 'batch' },
        { signal },
      ),
    notSupported(endpoint, setting, op),
  );
  return file.id;
}

export async function createBatch(
  endpoint: LlmEndpoint,
  inputFileId: string,
  metadata: Record<string, string>,
  setting: string,
): Promise<Batch> {
  const op = `POST ${endpoint.baseURL}/batches`;
  return callEndpoint(
    endpoint,
    op,
    (signal) =>
      endpoint.client.batches.create(
        { input_file_id: inputFileId, endpoint: '/v1/chat/completions', completion_window: '24h', metadata },
        { signal },
      ),
    notSupported(endpoint, setting, op),
  );
}

/**
 * A batch this step created earlier and did not get to record (the attempt died between creating and storing it),
 * found by its metadata among the newest batches; undefined when there is none or the endpoint cannot list them.
 */
export async function findBatch(
  endpoint: LlmEndpoint,
  metadata: Record<string, string>,
  setting: string,
): Promise<Batch | undefined> {
  const op = `GET ${endpoint.baseURL}/batches`;
  const matches = (b: Batch) => Object.entries(metadata).every(([k, v]) => b.metadata?.[k] === v);
  try {
    return await callEndpoint(
      endpoint,
      op,
      async (signal) => {
        let seen = 0;
        for await (const b of endpoint.client.batches.list({ limit: 100 }, { signal })) {
          if (matches(b)) return b;
          if (++seen >= 1000) break;
        }
        return undefined;
      },
      notSupported(endpoint, setting, op),
    );
  } catch (err) {
    if (err instanceof InvalidDataError) return undefined;
    throw err;
  }
}

export async function retrieveBatch(endpoint: LlmEndpoint, batchId: string, setting: string): Promise<Batch> {
  const op = `GET ${endpoint.baseURL}/batches/${batchId}`;
  return callEndpoint(
    endpoint,
    op,
    (signal) => endpoint.client.batches.retrieve(batchId, { signal }),
    notSupported(endpoint, setting, op),
  );
}

async function fileText(endpoint: LlmEndpoint, fileId: string, setting: string): Promise<string> {
  const op = `GET ${endpoint.baseURL}/files/${fileId}/content`;
  return callEndpoint(
    endpoint,
    op,
    async (signal) => (await endpoint.client.files.content(fileId, { signal })).text(),
    notSupported(endpoint, setting, op),
  );
}

/** A line of an output or error file. */
interface ResultLine {
  custom_id?: string;
  response?: { status_code?: number; body?: unknown } | null;
  error?: { code?: string; message?: string } | null;
}

/**
 * Every request's outcome in a finished batch, in the order of `customIds`: its output and error files read and
 * matched by `custom_id`. A request neither file names (a failed or cancelled batch) is to be asked again.
 */
export async function batchOutcomes(
  endpoint: LlmEndpoint,
  batch: Batch,
  customIds: string[],
  setting: string,
): Promise<BatchOutcome[]> {
  const found = new Map<string, BatchOutcome>();
  for (const fileId of [batch.output_file_id, batch.error_file_id]) {
    if (!fileId) continue;
    for (const line of (await fileText(endpoint, fileId, setting)).split('\n')) {
      if (!line.trim()) continue;
      let parsed: ResultLine;
      try {
        parsed = JSON.parse(line) as ResultLine;
      } catch {
        continue; // an unreadable line names no request: that request is asked again
      }
      if (typeof parsed.custom_id !== 'string') continue;
      found.set(parsed.custom_id, outcomeOf(parsed.custom_id, parsed));
    }
  }
  return customIds.map(
    (id) => found.get(id) ?? { customId: id, retry: `no result in batch ${batch.id} (${batch.status})` },
  );
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
