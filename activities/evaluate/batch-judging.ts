import { hashInputs } from '../artifacts/hashing';
import type { BenchmarkPrompt } from '../datasets/benchmark-prompts';
import type { ActivityDeps } from '../deps';
import { batchActivities, batchStepBase, type BatchStep } from '../llm/batch-rounds';
import { endpointFor, judgeModel } from '../llm/llm-client';
import type { EvaluateInput } from '../types';
import { judgingLimits } from './evaluate';
import {
  answersAt,
  judgeCacheMaterial,
  judgeParseRetries,
  judgeRequest,
  readJsonlAt,
  type CachedReply,
} from './judge-answers';
import { JUDGE_CORRECTION, judgeQuestion } from './judge-prompt';
import { parseVerdict } from '../results/verdict';

/**
 * `evaluation.mode: "batch"`: every (model, benchmark, prompt, order) judgment the evaluate step would ask and the
 * answer cache lacks goes through the Batch API; each reply that parses goes into the cache under the key and with
 * the value the online pool would have written, so the evaluate step that follows takes it from there and asks online
 * only what the batches left.
 */

export interface JudgeBatchInput extends EvaluateInput {
  round: number;
}

const parses = (content: string) => parseVerdict(content).ok;

/** One distinct judge request, at its place in the walk (equal requests are asked once, in the place of the first). */
interface JudgeItem {
  customId: string;
  material: Record<string, unknown>;
  request: () => ReturnType<typeof judgeRequest>;
}

/** The step's rounds, or undefined for the offline judge (it asks no endpoint). */
async function judging(deps: ActivityDeps, input: JudgeBatchInput): Promise<BatchStep<JudgeItem> | undefined> {
  const endpoint = endpointFor(input.judge, 'input.evaluation.judge', deps.env, { maxRetries: 6, timeoutSeconds: 120 });
  if (!endpoint) return undefined;
  const base = batchStepBase(deps, input, 'evaluate', endpoint, input.cache);
  const { model } = judgeModel(deps.env, input.judgeModel);
  const parseRetries = judgeParseRetries(input);

  /** Every judgment in the evaluate step's order, repeats included; one benchmark's answers are read at a time. */
  async function* everyJudgment(): AsyncGenerator<JudgeItem> {
    for (const bench of input.benchmarks) {
      const prompts = await readJsonlAt<BenchmarkPrompt>(deps, bench.uri);
      const theirs = await answersAt(deps, input.baseline.answers[bench.name]);
      for (const candidate of input.candidates) {
        const mine = await answersAt(deps, candidate.answers[bench.name]);
        for (const p of prompts) {
          const question = judgeQuestion(p.instruction, p.input);
          const cand = mine.get(p.id) ?? '';
          const base = theirs.get(p.id) ?? '';
          // Order 1 shows the baseline first, order 2 the candidate first, as the evaluate step asks them.
          for (const [answer1, answer2] of [
            [base, cand],
            [cand, base],
          ]) {
            const material = judgeCacheMaterial(model, question, answer1, answer2, parseRetries);
            const customId = `j-${hashInputs(material).slice(0, 40)}`;
            yield { customId, material, request: () => judgeRequest(model, question, answer1, answer2) };
          }
        }
      }
    }
  }

  // Only the ids' places are kept: requests are built again on each walk, so the step's memory does not grow with
  // benchmarks' answers times candidates times orders.
  const positions = new Map<string, number>();
  for await (const { customId } of everyJudgment()) {
    if (!positions.has(customId)) positions.set(customId, positions.size);
  }
  async function* distinct() {
    let next = 0;
    for await (const item of everyJudgment()) {
      // A repeat's id was placed before: only the first occurrence has the next position.
      if (positions.get(item.customId) !== next) continue;
      yield item;
      next += 1;
    }
  }
  const { cache } = base;
  return {
    ...base,
    parseRetries,
    parses,
    correction: JUDGE_CORRECTION,
    position: (customId) => positions.get(customId) ?? -1,
    items: distinct,
    isCached: async ({ material }) => (await cache.get(material)) !== undefined,
    requests: ({ customId, request }) => [{ customId, request }],
    keep: ({ material }, [{ outcome, asks }]) => {
      // A reply that stayed unparseable or a rejected request is not cached, as online: the evaluate step asks again.
      if (!('content' in outcome) || !parses(outcome.content)) return false;
      const value: CachedReply = { reply: outcome.content, reasked: asks - 1 };
      cache.put(material, value);
      return true;
    },
    limits: judgingLimits(input),
    name: 'judging',
    logged: () => ({ judgments: positions.size }),
  };
}

export const { submit: submitJudgeBatch, collect: collectJudgeBatch } = batchActivities(judging, 'the offline judge');
