import OpenAI from 'openai';
import pLimit from 'p-limit';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fromJsonl } from '../artifacts/jsonl';

/** One line of `pift.generate`'s `"mode": "prompts"` file: the exact token ids it would feed the model. */
export interface ServedPrompt {
  id: string | number;
  prompt: number[];
  /** The prompt's answer budget: `max_length` counting this prompt alone, capped by `max_new_tokens`. */
  max_tokens: number;
}

/** One line of the completions file `pift.generate`'s `"mode": "answers"` extracts answers from. */
export interface ServedCompletion {
  id: string | number;
  text: string;
  completion_tokens: number;
  finish_reason: string;
}

export const readServedPrompts = async (path: string) => fromJsonl<ServedPrompt>(await readFile(path, 'utf8'));

/**
 * The completions a killed attempt on this worker left, keeping only whole lines: a torn last line is dropped from
 * the file (its prompt is asked again), so `pift.generate` reads nothing but complete records.
 */
async function keptCompletions(path: string): Promise<Set<string>> {
  if (!existsSync(path)) return new Set();
  const kept: string[] = [];
  const done = new Set<string>();
  for (const line of (await readFile(path, 'utf8')).split('\n')) {
    try {
      done.add(JSON.stringify((JSON.parse(line) as ServedCompletion).id));
      kept.push(`${line}\n`);
    } catch {
      /* the torn line a killed attempt left, or the empty piece after the last newline */
    }
  }
  await writeFile(path, kept.join(''));
  return done;
}

export interface CompleteOptions {
  client: OpenAI;
  model: string;
  prompts: ServedPrompt[];
  /** Appended one line per answer, so a retried attempt on this worker asks only what is missing. */
  completionsFile: string;
  concurrency: number;
  signal: AbortSignal;
  onDone: (done: number, total: number) => void;
  /** What a failed request is reported as. */
  failure: (promptId: string | number, err: unknown) => Error;
}

/**
 * Sends every prompt as token ids to the completions endpoint with the paper's decoding (greedy: temperature 0,
 * top_p 1) and each prompt's own budget, `concurrency` at a time. The first failure stops the rest; a cancellation
 * (`signal`) stops them too, and is thrown as its reason rather than as an aborted request.
 */
export async function completeAll(o: CompleteOptions): Promise<void> {
  const done = await keptCompletions(o.completionsFile);
  const pending = o.prompts.filter((p) => !done.has(JSON.stringify(p.id)));
  let finished = o.prompts.length - pending.length;
  o.onDone(finished, o.prompts.length);
  const failed = new AbortController();
  const signal = AbortSignal.any([o.signal, failed.signal]);
  const complete = async (prompt: ServedPrompt) => {
    if (signal.aborted) return;
    const response = await o.client.completions
      .create(
        { model: o.model, prompt: prompt.prompt, max_tokens: prompt.max_tokens, temperature: 0, top_p: 1 },
        { signal },
      )
      .catch((err: unknown) => {
        throw signal.aborted ? err : o.failure(prompt.id, err);
      });
    const choice = response.choices[0];
    if (!choice || response.usage === undefined) {
      throw new Error(`the server's completion of prompt ${JSON.stringify(prompt.id)} has no choice or no usage`);
    }
    const record: ServedCompletion = {
      id: prompt.id,
      text: choice.text,
      completion_tokens: response.usage.completion_tokens,
      finish_reason: choice.finish_reason,
    };
    await appendFile(o.completionsFile, `${JSON.stringify(record)}\n`);
    finished += 1;
    o.onDone(finished, o.prompts.length);
  };
  const limit = pLimit(o.concurrency);
  // The first failure aborts the requests in flight and the prompts not sent yet, and is what this throws (once every
  // request has settled, so nothing is appended after it returns); a cancellation throws its own reason.
  await Promise.all(pending.map((p) => limit(() => complete(p).catch((err: unknown) => failed.abort(err)))));
  signal.throwIfAborted();
}
