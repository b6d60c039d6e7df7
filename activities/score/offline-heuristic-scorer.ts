/**
 * offline-heuristic-v1: a deterministic difficulty scorer for runs without a scoring API. It is NOT the paper's
 * GPT-4 scorer; it reads surface features of the row (instruction, input, output) and returns a 1-5 score with
 * one decimal, higher = harder, so the rest of the pipeline (staging, training, judging) runs end to end offline.
 *
 * Formula (every text lowercased; "words" = whitespace-separated tokens; log2 is base-2 logarithm):
 *
 *   score = round1(clamp(1 + raw, 1, 5)),  raw = the sum of
 *
 *   operations   sum over the DISTINCT operation verbs found in the instruction (any word starting with the verb,
 *                so "reversed" counts as reverse; "how many" counts as count), by class:
 *                  light 0.05     copy, repeat, echo, give, name, list, write, print, state, uppercase, lowercase,
 *                                 capitalize
 *                  transform 0.8  reverse, count, sort, add, subtract, sum, find, extract, convert, translate,
 *                                 replace, remove, rewrite, classify, identify, compare, rank, spell, match
 *                  heavy 1.1      multiply, divide, calculate, compute, solve, format, summarize/summarise, explain,
 *                                 analyze/analyse, prove, derive, design, plan, evaluate, generate, implement,
 *                                 optimize/optimise, debug, compose
 *                capped at 2.5
 *   steps        0.5 per multi-step marker in the instruction (then, after, afterwards, before, finally, next,
 *                followed by, step by step), capped at 1.5
 *   format       0.8 once if the instruction asks for a structured format (json, table, csv, markdown, yaml, xml,
 *                bullet, numbered list)
 *   reasoning    0.5 per distinct reasoning word in the instruction (why, reason, justify, prove, derive, analyze /
 *                analyse, compare, evaluate, step by step), capped at 1.0
 *   numbers      in instruction + input: 0.15 per number beyond the second (long operand lists) plus 0.1 per
 *                number of two or more digits, capped at 1.5
 *   operators    0.25 per arithmetic operator written between operands (+ - * / x × ÷ ^ =) in instruction + input,
 *                capped at 0.75
 *   lengths      0.04 * log2(1 + instruction words) + 0.1 * log2(1 + input words)
 *                + 0.1 * log2(1 + output characters / 4)
 *
 * The weights were set by hand so that the demo dataset's families rank easy < medium < hard (tested) and its
 * levels fall on the default stage cuts: easy 1.3-1.4 (< 1.5), medium 2.1-2.4, hard 3.6-4.0 (>= 3.5). They are a
 * plausible ordering signal, not a calibrated difficulty model.
 */

export const OFFLINE_SCORER_LABEL = "offline-heuristic-v1 (not the paper's GPT-4 scorer)";

const words = (text: string): string[] => text.split(/\s+/).filter((w) => w !== '');
const hasWordStartingWith = (tokens: string[], stem: string) => tokens.some((t) => t.startsWith(stem));
const count = (text: string, pattern: RegExp) => (text.match(pattern) ?? []).length;

const LIGHT = words('copy repeat echo give name list write print state uppercase lowercase capitalize');
const TRANSFORM = words(
  'reverse count sort add subtract sum find extract convert translate replace remove rewrite classify identify ' +
    'compare rank spell match',
);
const HEAVY = words(
  'multiply divide calculate compute solve format summarize summarise explain analyze analyse prove derive design ' +
    'plan evaluate generate implement optimize optimise debug compose',
);
const STEP_MARKERS = /\b(?:then|after|afterwards|before|finally|next|followed by|step by step)\b/g;
const FORMAT_WORDS = /\b(?:json|table|csv|markdown|yaml|xml|bullet|numbered list)\b/;
const REASONING_WORDS = [...words('why reason justify prove derive analyze analyse compare evaluate'), 'step by step'];
const OPERATOR = /(?<=[\d)]\s*)(?:[+\-*/×÷^=]|x(?=\s*\d))(?=\s*[\d(])/g;

export interface ScorableRow {
  instruction: string;
  input?: string;
  output?: string;
}

/** Each feature's contribution to `raw` (already weighted and capped), in the order of the formula above. */
export function difficultyFeatures(row: ScorableRow) {
  const instruction = row.instruction.toLowerCase();
  const input = (row.input ?? '').toLowerCase();
  const output = row.output ?? '';
  const instructionTokens = words(instruction).map((w) => w.replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, ''));

  let operations = 0;
  for (const [verbs, weight] of [
    [LIGHT, 0.05],
    [TRANSFORM, 0.8],
    [HEAVY, 1.1],
  ] as const) {
    for (const verb of verbs) {
      const found =
        hasWordStartingWith(instructionTokens, verb) || (verb === 'count' && instruction.includes('how many'));
      if (found) operations += weight;
    }
  }
  const reasoningFound = REASONING_WORDS.filter((w) =>
    w.includes(' ') ? instruction.includes(w) : hasWordStartingWith(instructionTokens, w),
  ).length;
  const both = `${instruction}\n${input}`;
  const numbers = both.match(/\d+(?:\.\d+)?/g) ?? [];
  const multiDigit = numbers.filter((n) => n.replace('.', '').length >= 2).length;

  return {
    operations: Math.min(operations, 2.5),
    steps: Math.min(0.5 * count(instruction, STEP_MARKERS), 1.5),
    format: FORMAT_WORDS.test(instruction) ? 0.8 : 0,
    reasoning: Math.min(0.5 * reasoningFound, 1.0),
    numbers: Math.min(0.15 * Math.max(0, numbers.length - 2) + 0.1 * multiDigit, 1.5),
    operators: Math.min(0.25 * count(both, OPERATOR), 0.75),
    lengths:
      0.04 * Math.log2(1 + words(instruction).length) +
      0.1 * Math.log2(1 + words(input).length) +
      0.1 * Math.log2(1 + Array.from(output).length / 4),
  };
}

/** 1 + the sum of the features, clamped to [1, 5], rounded to one decimal. */
export function offlineHeuristicScore(row: ScorableRow): number {
  // Summed in the formula's order (the features' order), so every score is the same float as ever.
  const raw = Object.values(difficultyFeatures(row)).reduce((sum, f) => sum + f, 0);
  return Math.round(10 * Math.min(5, Math.max(1, 1 + raw))) / 10;
}
