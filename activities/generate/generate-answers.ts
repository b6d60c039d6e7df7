import { Context } from '@temporalio/activity';
import ms, { type StringValue } from 'ms';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { allowedLocation, openStore } from '../../store';
import type { ActivityDeps } from '../deps';
import { hashInputs } from '../artifacts/hashing';
import { filePart } from '../artifacts/parts';
import { generateKeys } from '../artifacts/run-keys';
import { runStep } from '../artifacts/step';
import { localModel, receiveFile } from '../artifacts/hand-off';
import { cachedByTrainer } from '../python/model-ref';
import { checkModel } from '../python/check-model';
import { runTrainerProcess } from '../python/trainer-process';
import { servedGeneration, type RunGenerate } from './served-answers';
import type { GenerateInput, GenerateResult } from '../types';

/**
 * The released generation code's handling, by benchmark: HH and OASST prompts get "\n" + input even when the input
 * is empty (picked by name, as the released scripts pick formats); every benchmark's answer is the decoded text's
 * piece after "Assistant:", not stripped.
 */
export const paperInputHandling = (benchmark: string) => ({
  answer_extraction: 'paper',
  newline_for_empty_input: /anthropic|oasst/i.test(benchmark),
});

/**
 * Answers every benchmark prompt with one model using the paper's decoding (greedy, max length 1024 counting the
 * prompt). Each benchmark's answers are committed on their own, so a retry only redoes the unfinished ones.
 */
export async function generateAnswers(deps: ActivityDeps, input: GenerateInput): Promise<GenerateResult> {
  const ctx = Context.current();
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const keys = generateKeys(input.runId, input.name);
  const inputsHash = hashInputs({
    modelUri: input.modelUri,
    benchmarks: input.benchmarks.map((b) => ({ name: b.name, uri: b.uri, prompts: b.prompts })),
    maxLength: input.maxLength,
    maxNewTokens: input.maxNewTokens,
    // Only a run that asks for it hashes the setting, so earlier runs' steps keep their hash.
    ...(input.answerExtraction === 'paper' && { answerExtraction: 'paper' }),
    ...(input.assistantMarker === 'training' && { assistantMarker: 'training' }),
    ...(input.conversationTemplate !== undefined && { conversationTemplate: input.conversationTemplate }),
    // Served answers may differ from pift.generate's in the last bits of the logits (another kernel, another
    // precision), so they are their own step; how many are in flight changes no greedy answer.
    ...(input.serving !== undefined && { generation: 'served' }),
  });
  const progress = { name: input.name, benchmark: '', done: 0, total: 0 };
  return runStep(
    store,
    { runId: input.runId, step: `generate/${input.name}`, key: keys.manifest, inputsHash },
    async (out) => {
      const work = join(deps.workDir, input.runId, 'generate', input.name);
      await mkdir(work, { recursive: true });
      if (cachedByTrainer(input.modelUri)) {
        // The baseline may be a builtin or hub model: this worker's model cache must hold it.
        const field = 'input.baseline.checkpoint';
        await checkModel(deps, { runId: input.runId, model: input.modelUri, maxLength: input.maxLength, field });
      }
      const modelDir = await localModel(deps, input.modelUri, join(work, 'model'), 'input.baseline.checkpoint');

      const served = input.serving && servedGeneration(deps, { ...input, serving: input.serving }, work, progress);
      const answers: Record<string, string> = {};
      try {
        for (const bench of input.benchmarks) {
          const key = keys.answers(bench.name);
          answers[bench.name] = store.uriFor(key);
          await filePart(out, key, keys.answersDone(bench.name, inputsHash), async () => {
            const promptsFile = join(work, `${bench.name}.prompts.jsonl`);
            const outFile = join(work, `${bench.name}.answers.jsonl`);
            await receiveFile(bench.uri, deps.env, promptsFile, { setting: 'input.benchmarks' });
            const config = {
              model_dir: modelDir,
              input_file: promptsFile,
              output_file: outFile,
              max_length: input.maxLength,
              ...(input.maxNewTokens ? { max_new_tokens: input.maxNewTokens } : {}),
              ...(input.answerExtraction === 'paper' && paperInputHandling(bench.name)),
              ...(input.assistantMarker === 'training' && { prompt_ends_with_space: true }),
              ...(input.conversationTemplate !== undefined && { conversation_template: input.conversationTemplate }),
              parent_pid: process.pid,
            };
            Object.assign(progress, { benchmark: bench.name, done: 0, total: bench.prompts });
            // `python -m pift.generate` on one config (answering, or one half of the served path).
            const generate: RunGenerate = async (suffix, fields, onEvent) => {
              const configPath = join(work, `${bench.name}${suffix}.config.json`);
              await writeFile(configPath, JSON.stringify({ ...config, ...fields }, null, 2));
              await runTrainerProcess({
                python: deps.python,
                module: 'pift.generate',
                configPath,
                cwd: work,
                env: deps.env,
                progressTimeoutMs: ms(input.progressTimeout as StringValue),
                heartbeat: () => ctx.heartbeat(progress),
                onEvent: (e) => {
                  if (e.event === 'progress') Object.assign(progress, { done: e.done, total: e.total });
                  onEvent?.(e);
                },
              });
            };
            await (served ? served.answer(bench, generate) : generate('', {}));
            return outFile;
          });
        }
      } finally {
        await served?.stop();
      }
      const result: GenerateResult = {
        name: input.name,
        answers,
        reused: false,
        ...(served ? served.recorded() : { generatedBy: 'pift.generate' as const }),
      };
      await rm(work, { recursive: true, force: true });
      return result;
    },
    { heartbeat: () => progress },
  );
}
