import { Context } from '@temporalio/activity';
import OpenAI from 'openai';
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { InvalidDataError } from '../../common/failures';
import { workerDefaults } from '../validate/worker-defaults';

export interface LlmEndpoint {
  client: OpenAI;
  baseURL: string;
}

/**
 * The OpenAI-compatible endpoint configured in the worker's environment, or undefined for offline mode.
 * Base URL and key never come from workflow input, so they never reach history, logs or artifacts.
 */
export function llmEndpoint(
  env: NodeJS.ProcessEnv,
  opts: { maxRetries: number; timeoutSeconds: number },
): LlmEndpoint | undefined {
  const baseURL = env.PIFT_OPENAI_BASE_URL ?? env.OPENAI_BASE_URL;
  const apiKey = env.PIFT_OPENAI_API_KEY ?? env.OPENAI_API_KEY;
  if (!baseURL && !apiKey) return undefined;
  return {
    // The client retries 408/409/429/5xx and connection errors with exponential backoff, honouring Retry-After.
    client: new OpenAI({
      baseURL,
      apiKey: apiKey ?? 'unset',
      maxRetries: opts.maxRetries,
      timeout: opts.timeoutSeconds * 1000,
    }),
    baseURL: baseURL ?? 'https://api.openai.com/v1',
  };
}

/**
 * The endpoint a step uses: none for 'offline', the environment's for 'auto' when there is one, and for 'openai' the
 * environment's or a non-retryable error naming the setting.
 */
export function endpointFor(
  kind: 'auto' | 'openai' | 'offline',
  setting: string,
  env: NodeJS.ProcessEnv,
  opts: { maxRetries: number; timeoutSeconds: number },
): LlmEndpoint | undefined {
  const endpoint = kind === 'offline' ? undefined : llmEndpoint(env, opts);
  if (kind === 'openai' && !endpoint) {
    throw new InvalidDataError(`${setting} is "openai" but the worker has no PIFT_OPENAI_BASE_URL / OPENAI_API_KEY`, {
      field: setting,
    });
  }
  return endpoint;
}

/** Model names may come from the input (not secret); the environment gives the deployment's default. */
export const scorerModel = (env: NodeJS.ProcessEnv, fromInput?: string) => fromInput ?? workerDefaults(env).scorerModel;
export const judgeModel = (env: NodeJS.ProcessEnv, fromInput?: string) => fromInput ?? workerDefaults(env).judgeModel;

/**
 * One chat completion, aborted when the activity is cancelled. Transport faults were already retried by the client.
 * A key or model the endpoint refuses fails the run (retrying cannot fix settings); a single request it rejects
 * (400/422, e.g. a content filter) is returned as `rejected`, for the caller to record against that row.
 */
export async function complete(
  endpoint: LlmEndpoint,
  params: ChatCompletionCreateParamsNonStreaming,
  setting: string,
): Promise<{ content: string } | { rejected: string }> {
  try {
    const reply = await endpoint.client.chat.completions.create(params, {
      signal: Context.current().cancellationSignal,
    });
    return { content: reply.choices?.[0]?.message?.content ?? '' };
  } catch (err) {
    if (err instanceof OpenAI.APIError && err.status !== undefined) {
      if (err.status === 401 || err.status === 403) {
        throw new InvalidDataError(
          `the LLM endpoint refused the worker's API key (HTTP ${err.status}): ${err.message}`,
          { field: setting },
        );
      }
      if (err.status === 404) {
        throw new InvalidDataError(
          `${setting}: the LLM endpoint has no model "${params.model}" (HTTP 404): ${err.message}`,
          { field: setting },
        );
      }
      if (err.status === 400 || err.status === 422) return { rejected: `HTTP ${err.status}: ${err.message}` };
    }
    throw err;
  }
}
