import OpenAI from 'openai';
import { InvalidDataError } from './errors';

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
export const scorerModel = (env: NodeJS.ProcessEnv, fromInput?: string) =>
  fromInput ?? env.PIFT_SCORER_MODEL ?? 'gpt-4-0613';
export const judgeModel = (env: NodeJS.ProcessEnv, fromInput?: string) =>
  fromInput ?? env.PIFT_JUDGE_MODEL ?? 'gpt-4-0613';
