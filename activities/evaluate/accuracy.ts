/**
 * Exact-match accuracy of each model's answers on prompts with a checkable reference (the demo's held-out tasks have
 * one exact answer each). It sits beside the win rate, never replaces it: a judge's preference and being right are
 * different questions, and on prose benchmarks exact match says little. Answers and references are compared after
 * the offline judge's normalisation (NFKC, trimmed, whitespace runs collapsed, case kept).
 */
import type { BenchmarkPrompt } from '../datasets/benchmark-prompts';
import { normaliseAnswer } from './offline-reference-judge';
import type { AccuracyCount, ModelAccuracy } from '../types';

export const isExactMatch = (answer: string, reference: string): boolean =>
  normaliseAnswer(answer) === normaliseAnswer(reference);

export function countExactMatches(prompts: readonly BenchmarkPrompt[], answers: ReadonlyMap<string, string>) {
  const checkable = prompts.filter((p) => p.reference !== undefined);
  const correct = checkable.filter((p) => isExactMatch(answers.get(p.id) ?? '', p.reference!)).length;
  return withRatio(correct, checkable.length);
}

const withRatio = (correct: number, checked: number): AccuracyCount => ({
  correct,
  checked,
  accuracy: checked === 0 ? 0 : correct / checked,
});

/**
 * Accuracy of every model on every benchmark that has references; undefined when no benchmark has any, so results
 * of prose-only runs carry no misleading zero.
 */
export async function exactMatchAccuracy(
  models: readonly string[],
  benchmarks: ReadonlyMap<string, readonly BenchmarkPrompt[]>,
  answersOf: (model: string, benchmark: string) => Promise<ReadonlyMap<string, string>>,
): Promise<Record<string, ModelAccuracy> | undefined> {
  const checkable = [...benchmarks].filter(([, prompts]) => prompts.some((p) => p.reference !== undefined));
  if (checkable.length === 0) return undefined;
  const result: Record<string, ModelAccuracy> = {};
  for (const model of models) {
    const perBenchmark: Record<string, AccuracyCount> = {};
    for (const [name, prompts] of checkable)
      perBenchmark[name] = countExactMatches(prompts, await answersOf(model, name));
    const counts = Object.values(perBenchmark);
    const sum = (key: 'correct' | 'checked') => counts.reduce((n, c) => n + c[key], 0);
    result[model] = { benchmarks: perBenchmark, total: withRatio(sum('correct'), sum('checked')) };
  }
  return result;
}
