import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { openObject } from '../../store';
import { sha256 } from '../artifacts/hashing';
import { readJsonl } from '../artifacts/jsonl';
import type { ActivityDeps } from '../deps';
import type { EvaluateInput } from '../types';
import { buildJudgeRequest } from './judge-prompt';

/**
 * What one judge request is and what the answer cache keys its reply by: one definition for the online pool and the
 * Batch API, so that a reply bought either way lands under the same key.
 */

/** One order of one prompt; `answer1` is whoever is shown as Assistant 1. */
export function judgeRequest(
  model: string,
  question: string,
  answer1: string,
  answer2: string,
): ChatCompletionCreateParamsNonStreaming {
  const { promptVersion: _v, ...request } = buildJudgeRequest(question, answer1, answer2, { model });
  return request;
}

/** The answer cache's material of a reply. Its bytes are the cache's keys: never reorder or rename them. */
export function judgeCacheMaterial(
  model: string,
  question: string,
  answer1: string,
  answer2: string,
  parseRetries: number,
): Record<string, unknown> {
  const { promptVersion, messages, ...decoding } = buildJudgeRequest(question, answer1, answer2, { model });
  return { ...decoding, prompt: promptVersion, messages: sha256(JSON.stringify(messages)), parseRetries };
}

/** Re-asks of an unparseable reply: only when on (the paper counts the first reply strictly). */
export const judgeParseRetries = (input: EvaluateInput) =>
  input.reaskUnparseable === false ? 0 : (input.parseRetries ?? 2);

/** A cached reply: it parsed, after `reasked` asks beyond the first (so a run served from the cache reports the same). */
export interface CachedReply {
  reply: string;
  reasked: number;
}

export async function readJsonlAt<T>(deps: ActivityDeps, uri: string): Promise<T[]> {
  const { store, key } = openObject(uri, deps.env);
  return readJsonl<T>(store, key);
}

/** A model's answers file, by prompt id. */
export async function answersAt(deps: ActivityDeps, uri: string): Promise<Map<string, string>> {
  const answers = await readJsonlAt<{ id: string; answer: string }>(deps, uri);
  return new Map(answers.map((a) => [a.id, a.answer]));
}
