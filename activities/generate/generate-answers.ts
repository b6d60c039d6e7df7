import { Context } from '@temporalio/activity';
import type { Duration } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openObject, openStore } from '../../store';
import type { ActivityDeps } from '../deps';
import { hashInputs, sha256File } from '../artifacts/hashing';
import { commitManifest, finishedStep, type OutputEntry } from '../artifacts/manifest';
import { localModel } from '../artifacts/transfer';
import { runTrainerProcess } from '../train/trainer-process';
import { whileHeartbeating } from '../heartbeat';
import type { GenerateInput, GenerateResult } from '../types';

/**
 * Answers every benchmark prompt with one model using the paper's decoding (greedy, max length 1024 counting the
 * prompt). Each benchmark's answers are committed on their own, so a retry only redoes the unfinished ones.
 */
export async function generateAnswers(deps: ActivityDeps, input: GenerateInput): Promise<GenerateResult> {
  const ctx = Context.current();
  const store = openStore(input.store, deps.env);
  const base = `${input.runId}/generate/${input.name}`;
  const inputsHash = hashInputs({
    modelUri: input.modelUri,
    benchmarks: input.benchmarks.map((b) => ({ name: b.name, uri: b.uri, prompts: b.prompts })),
    maxLength: input.maxLength,
    maxNewTokens: input.maxNewTokens,
  });
  const done = await finishedStep<GenerateResult>(store, `${base}/manifest.json`, inputsHash);
  if (done) return { ...done, reused: true };
  let progress = { name: input.name, benchmark: '', done: 0, total: 0 };
  return whileHeartbeating(
    () => progress,
    async () => {
      const work = join(deps.workDir, input.runId, 'generate', input.name);
      await mkdir(work, { recursive: true });
      const modelDir = await localModel(deps.env, input.modelUri, join(work, 'model'), 'input.baseline.checkpoint');

      const answers: Record<string, string> = {};
      const outputs: OutputEntry[] = [];
      for (const bench of input.benchmarks) {
        const key = `${base}/${bench.name}.jsonl`;
        answers[bench.name] = store.uriFor(key);
        const partKey = `${base}/${bench.name}.${inputsHash.slice(0, 12)}.done`;
        if (!(await store.exists(partKey))) {
          const { store: benchStore, key: benchKey } = openObject(bench.uri, deps.env);
          const promptsFile = join(work, `${bench.name}.prompts.jsonl`);
          const outFile = join(work, `${bench.name}.answers.jsonl`);
          await benchStore.getFile(benchKey, promptsFile);
          const configPath = join(work, `${bench.name}.config.json`);
          const config = {
            model_dir: modelDir,
            input_file: promptsFile,
            output_file: outFile,
            max_length: input.maxLength,
            ...(input.maxNewTokens ? { max_new_tokens: input.maxNewTokens } : {}),
            parent_pid: process.pid,
          };
          await writeFile(configPath, JSON.stringify(config, null, 2));
          progress = { name: input.name, benchmark: bench.name, done: 0, total: bench.prompts };
          await runTrainerProcess({
            python: deps.python,
            module: 'pift.generate',
            configPath,
            cwd: work,
            env: deps.env,
            progressTimeoutMs: msToNumber(input.progressTimeout as Duration),
            heartbeat: () => ctx.heartbeat(progress),
            onEvent: (e) => {
              if (e.event === 'progress') progress = { ...progress, done: Number(e.done), total: Number(e.total) };
            },
          });
          await store.putFile(key, outFile);
          const entry: OutputEntry = { key, bytes: (await stat(outFile)).size, sha256: await sha256File(outFile) };
          // The marker carries the answers' size and hash, so a retry never downloads them again to describe them.
          await store.put(partKey, JSON.stringify(entry));
        }
        outputs.push(JSON.parse(await store.getText(partKey)) as OutputEntry);
      }
      const result: GenerateResult = { name: input.name, answers, reused: false };
      await commitManifest(store, `${base}/manifest.json`, {
        runId: input.runId,
        step: `generate/${input.name}`,
        inputsHash,
        outputs,
        result,
      });
      await rm(work, { recursive: true, force: true });
      return result;
    },
  );
}
