/**
 * offline-reference-judge-v1: a deterministic stand-in for the GPT-4 judge when no judge API is configured, for
 * prompt sets with known answers (the demo's held-out split). It is NOT the paper's judge: it measures agreement
 * with a reference answer, not helpfulness, and every report made with it says so.
 *
 * It returns the reply TEXT the GPT-4 judge would return ("s1 s2" on one line), so its output goes through the
 * same parser and two-order rule as a real judge's.
 *
 * Score of one answer, 1 to 10:
 * - normalise answer and reference: Unicode NFKC, trim, collapse whitespace runs to one space; case is kept, because
 *   the demo has tasks where case is the task, e.g. "write the word in uppercase" (referenceScore can lowercase, with
 *   `caseSensitive: false`);
 * - 10 when the normalised strings are equal;
 * - else 1 + 8 * similarity, rounded to one decimal (so at most 9), where similarity = 1 - d / max(|a|, |r|) and d is
 *   the Levenshtein distance between the normalised strings in Unicode code points (insert, delete, substitute,
 *   each cost 1). Inputs longer than MAX_COMPARED_CHARS code points are cut to that length first, to bound the
 *   quadratic cost; the cut applies to both strings alike.
 * Each score depends only on its own answer and the reference, so swapping the answers swaps the scores:
 * the judge has no position bias.
 */

export const OFFLINE_JUDGE_LABEL = "offline-reference-judge-v1 (not the paper's GPT-4 judge)";
export const MAX_COMPARED_CHARS = 4000;

export interface OfflineJudgeOptions {
  /** Compare case-sensitively (default true). */
  caseSensitive?: boolean;
}

export function normaliseAnswer(text: string, options: OfflineJudgeOptions = {}): string {
  const collapsed = text.normalize('NFKC').trim().replace(/\s+/g, ' ');
  return options.caseSensitive === false ? collapsed.toLowerCase() : collapsed;
}

/** Levenshtein distance over code points (a string's, or a list of them), two-row dynamic programme. */
export function editDistance(a: string | readonly string[], b: string | readonly string[]): number {
  const [x, y] = [Array.from(a), Array.from(b)];
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  let current = new Array<number>(y.length + 1);
  for (let i = 1; i <= x.length; i++) {
    current[0] = i;
    for (let j = 1; j <= y.length; j++) {
      const substitution = previous[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1);
      current[j] = Math.min(substitution, previous[j] + 1, current[j - 1] + 1);
    }
    [previous, current] = [current, previous];
  }
  return previous[y.length];
}

/** 1 - editDistance / longer length, in [0, 1]; 1 for two empty strings. */
export function editSimilarity(a: string, b: string): number {
  const [x, y] = [a, b].map((text) => Array.from(text).slice(0, MAX_COMPARED_CHARS));
  const longest = Math.max(x.length, y.length);
  return longest === 0 ? 1 : 1 - editDistance(x, y) / longest;
}

/** One answer's score against the reference: 10 on an exact (normalised) match, else 1 + 8 * similarity. */
export function referenceScore(reference: string, answer: string, options: OfflineJudgeOptions = {}): number {
  const r = normaliseAnswer(reference, options);
  const a = normaliseAnswer(answer, options);
  if (a === r) return 10;
  return Math.round(10 * (1 + 8 * editSimilarity(a, r))) / 10;
}

/**
 * The judge's reply for one order: "<score of answer1> <score of answer2>", e.g. "10 3.4".
 * `question` is accepted for parity with the GPT-4 judge's inputs; the score does not depend on it.
 */
export function offlineJudgeReply(args: { question: string; reference: string; answer1: string; answer2: string }) {
  return `${referenceScore(args.reference, args.answer1)} ${referenceScore(args.reference, args.answer2)}`;
}
