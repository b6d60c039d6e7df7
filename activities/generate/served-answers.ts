import { Context } from '@temporalio/activity';
import ms, { type StringValue } from 'ms';
import { join } from 'node:path';
import type { ActivityDeps } from '../deps';
import { whileHeartbeating } from '../heartbeat';
import type { TrainerEvent } from '../python/trainer-process';
import type { GenerateInput, GenerateResult, PreparedBenchmark } from '../types';
import { completeAll, readServedPrompts } from './served-completions';
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
      const prompts = await readServedPrompts(promptsFile);
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
