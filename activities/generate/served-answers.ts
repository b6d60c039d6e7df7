import { Context } from '@temporalio/activity';
import ms, { type StringValue } from 'ms';
import type OpenAI from 'openai';
import pLimit from 'p-limit';
import { existsSync } from 'node:fs';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fromJsonl } from '../artifacts/jsonl';
import type { ActivityDeps } from '../deps';
import { whileHeartbeating } from '../heartbeat';
import type { TrainerEvent } from '../python/trainer-process';
import type { GenerateInput, GenerateResult, PreparedBenchmark } from '../types';
import { serveCommandFrom, startServer, type ServedModel } from './serving-process';

/** One `pift.generate` run on the benchmark's config with these fields added. */
export type RunGenerate = (
  suffix: string,
  fields: object,
  onEvent?: (e: TrainerEvent<'pift.generate'>) => void,
) => Promise<void>;

/**
 * `evaluation.serving`: one model's benchmarks answered through a server the worker starts on the first benchmark that
 * needs it and stops with `stop()`, however the step ends. The server gets the very token ids `pift.generate` would
 * use ("prompts" mode), and `pift.generate` extracts its answers ("answers" mode).
 */
export function servedGeneration(
  deps: ActivityDeps,
  input: GenerateInput & { serving: NonNullable<GenerateInput['serving']> },
  work: string,
  /** The step's heartbeat details, which this keeps up to date. */
  progress: { done: number; total: number },
) {
  const ctx = Context.current();
  const command = serveCommandFrom(deps.env);
  let served: ServedModel | undefined;
  return {
    async answer(bench: PreparedBenchmark, generate: RunGenerate): Promise<void> {
      const promptsFile = join(work, `${bench.name}.served-prompts.jsonl`);
      let modelPath: string | undefined;
      let dtype: string | undefined;
      await generate('.prompts', { mode: 'prompts', prompts_file: promptsFile }, (e) => {
        if (e.event === 'done' && 'model_path' in e) ({ model_path: modelPath, dtype } = e);
      });
      const server = (served ??= await startServer({
        command,
        modelPath: modelPath!,
        name: input.name,
        python: deps.python,
        cwd: work,
        env: deps.env,
        startTimeoutMs: ms(input.serving.startTimeout as StringValue),
        startTimeoutText: `evaluation.serving.startTimeout (${input.serving.startTimeout})`,
        requestTimeoutMs: ms(input.progressTimeout as StringValue),
        ...(!input.serving.allowOtherDtype && { dtype }),
        heartbeat: () => ctx.heartbeat(progress),
      }));
      const completionsFile = join(work, `${bench.name}.completions.jsonl`);
      const prompts = fromJsonl<ServedPrompt>(await readFile(promptsFile, 'utf8'));
      await whileHeartbeating(
        () => progress,
        () =>
          completeAll({
            client: server.client,
            model: server.name,
            prompts,
            completionsFile,
            concurrency: input.serving.concurrency,
            signal: ctx.cancellationSignal,
            onDone: (done, total) => Object.assign(progress, { done, total }),
            failure: server.requestFailure,
          }),
      );
      await generate('.answers', { mode: 'answers', completions_file: completionsFile });
    },
    /** What the step records: served, and by what (absent when every benchmark was already answered). */
    recorded(): Pick<GenerateResult, 'generatedBy' | 'server' | 'servedDtype'> {
      return { generatedBy: 'served', ...(served && { server: served.server, servedDtype: served.dtype }) };
    },
    stop: async () => served?.stop(),
  };
}

/** One line of `pift.generate`'s `"mode": "prompts"` file: the exact token ids it would feed the model. */
interface ServedPrompt {
  id: string | number;
  prompt: number[];
  /** The prompt's answer budget: `max_length` counting this prompt alone, capped by `max_new_tokens`. */
  max_tokens: number;
}

/** One line of the completions file `pift.generate`'s `"mode": "answers"` extracts answers from. */
interface ServedCompletion {
  id: string | number;
  text: string;
  completion_tokens: number;
  finish_reason: string;
}

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

interface CompleteOptions {
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
