/**
 * What to read beside each win rate, computed from the stored per-prompt verdicts (evaluate/judgments/…). None of it
 * changes the paper's number (win-rate.ts); it says how far to trust it:
 *
 * - a bootstrap 95% interval of the paper's win rate: prompts resampled with replacement, the win rate recomputed,
 *   the 2.5th and 97.5th percentiles (nearest rank) of 2,000 resamples. Overall (the plain mean over benchmarks), each
 *   benchmark is resampled on its own, as the mean is taken. Seeded per (model, benchmark), so results are repeatable.
 * - the position-bias rate: of the prompts judged in both orders, the share whose preference flips with the order
 *   (the candidate better in one order and worse in the other: the judge preferred the same position both times).
 * - parse failures: prompts that failed, and replies (two per prompt) that did not parse.
 * - the mean answer length of each side in characters (UTF-16 code units, as stored).
 * - a paired sign test against the baseline: prompts with a decisive outcome (win or loss; ties and failures left
 *   out), two-sided exact binomial p-value under p = 1/2.
 */
import { createHash } from 'node:crypto';
import { parseVerdict, type Outcome, type Preference } from './verdict';

/** The fields of a stored judgment these statistics read (evaluate.ts writes more). */
export interface StoredVerdict {
  outcome: Outcome;
  order1?: Preference;
  order2?: Preference;
  replyOrder1?: string;
  replyOrder2?: string;
  candidateChars?: number;
  baselineChars?: number;
  /** Extra asks the judge needed for this prompt, where the judging recorded them. */
  reasks?: number;
}

/** The bootstrap every run's statistics are drawn with (results.json records it beside them). */
const BOOTSTRAP = { resamples: 2000, level: 0.95, seed: 3517 } as const;

export interface WinRateInterval {
  low: number;
  high: number;
}

export interface CellStatistics {
  prompts: number;
  /** Bootstrap percentile interval of the paper's win rate (signed, -50..+50). */
  interval: WinRateInterval;
  positionBias: { flips: number; judgedBothOrders: number; rate: number | null };
  parseFailures: { prompts: number; replies: number };
  /** Summed over prompts; absent when the stored verdicts do not record re-asks. */
  reasks?: number;
  meanChars: { candidate: number | null; baseline: number | null };
  signTest: { wins: number; losses: number; pValue: number };
}

export interface ModelStatistics {
  model: string;
  benchmarks: Array<{ benchmark: string } & CellStatistics>;
  overall: CellStatistics;
}

export interface WinRateStatistics {
  method: string;
  resamples: number;
  level: number;
  seed: number;
  lengthUnit: 'characters';
  comparisons: ModelStatistics[];
}

export const STATISTICS_METHOD =
  'interval: bootstrap over prompts (percentile, nearest rank; overall resamples each benchmark on its own); ' +
  'position bias: share of prompts judged in both orders whose preference flips (better in one order, worse in the ' +
  'other); sign test: two-sided exact binomial on wins vs losses, ties and failures left out; lengths in characters';

/** mulberry32: a small, well-known 32-bit generator; enough for resampling, and identical on every platform. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One stream per cell, so a cell's interval does not depend on which other cells were computed before it. */
const streamSeed = (seed: number, ...names: string[]) =>
  createHash('sha256')
    .update(JSON.stringify([seed, ...names]))
    .digest()
    .readUInt32BE(0);

/** A prompt's share of the win rate: 1 for a win, 1/2 for a tie, 0 for a loss or a failure (which stays in N). */
const points = (outcome: Outcome) => (outcome === 'win' ? 1 : outcome === 'tie' ? 0.5 : 0);

/** Win rate of a resample of each group, as the paper computes it: mean over groups of 100 * mean(points) - 50. */
function resampledWinRate(groups: readonly number[][], random: () => number): number {
  let sum = 0;
  for (const g of groups) {
    let total = 0;
    for (let i = 0; i < g.length; i++) total += g[Math.floor(random() * g.length)];
    sum += (100 * total) / g.length - 50;
  }
  return sum / groups.length;
}

/** Percentile bootstrap interval of the (mean over groups of the) paper's win rate. */
export function bootstrapInterval(
  groups: ReadonlyArray<readonly Outcome[]>,
  opts: { resamples: number; level: number; seed: number },
): WinRateInterval {
  const values = groups.filter((g) => g.length > 0).map((g) => g.map(points));
  if (values.length === 0) return { low: NaN, high: NaN };
  const random = seededRandom(opts.seed);
  const draws = Float64Array.from({ length: opts.resamples }, () => resampledWinRate(values, random)).sort();
  const tail = (1 - opts.level) / 2;
  return {
    low: draws[Math.floor(tail * opts.resamples)],
    high: draws[Math.ceil((1 - tail) * opts.resamples) - 1],
  };
}

/** Two-sided exact binomial test of `k` successes in `n` under p = 1/2: 2 · P(X <= min(k, n-k)), at most 1. */
export function signTestPValue(wins: number, losses: number): number {
  const n = wins + losses;
  if (n === 0) return 1;
  const k = Math.min(wins, losses);
  let tail = 0;
  if (n <= 1000) {
    // P(X = i) term by term from 2^-n, exact for small n (2^-n is a double down to n = 1074).
    let term = 2 ** -n;
    for (let i = 0; i <= k; i++) {
      tail += term;
      term = (term * (n - i)) / (i + 1);
    }
  } else {
    // In logs, so large n neither overflows nor underflows.
    let logTerm = -n * Math.LN2;
    for (let i = 0; i <= k; i++) {
      tail += Math.exp(logTerm);
      logTerm += Math.log((n - i) / (i + 1));
    }
  }
  return Math.min(1, 2 * tail);
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

/** Reply texts that do not parse; without stored replies, a failed prompt counts one. */
function unparsedReplies(v: StoredVerdict): number {
  if (v.replyOrder1 === undefined || v.replyOrder2 === undefined) return v.outcome === 'failed' ? 1 : 0;
  return [v.replyOrder1, v.replyOrder2].filter((r) => !parseVerdict(r).ok).length;
}

function cellStatistics(
  groups: ReadonlyArray<readonly StoredVerdict[]>,
  opts: { resamples: number; level: number; seed: number },
): CellStatistics {
  const all = groups.flat();
  const both = all.filter((v) => v.order1 !== undefined && v.order2 !== undefined);
  const flips = both.filter(
    (v) => (v.order1 === 'better' && v.order2 === 'worse') || (v.order1 === 'worse' && v.order2 === 'better'),
  ).length;
  const wins = all.filter((v) => v.outcome === 'win').length;
  const losses = all.filter((v) => v.outcome === 'loss').length;
  const withReasks = all.filter((v) => typeof v.reasks === 'number');
  const cell: CellStatistics = {
    prompts: all.length,
    interval: bootstrapInterval(
      groups.map((g) => g.map((v) => v.outcome)),
      opts,
    ),
    positionBias: { flips, judgedBothOrders: both.length, rate: both.length ? flips / both.length : null },
    parseFailures: {
      prompts: all.filter((v) => v.outcome === 'failed').length,
      replies: all.reduce((n, v) => n + unparsedReplies(v), 0),
    },
    meanChars: {
      candidate: mean(all.flatMap((v) => (typeof v.candidateChars === 'number' ? [v.candidateChars] : []))),
      baseline: mean(all.flatMap((v) => (typeof v.baselineChars === 'number' ? [v.baselineChars] : []))),
    },
    signTest: { wins, losses, pValue: signTestPValue(wins, losses) },
  };
  if (withReasks.length) cell.reasks = withReasks.reduce((n, v) => n + v.reasks!, 0);
  return cell;
}

/**
 * Statistics per (model, benchmark) and per model overall, from the stored verdicts of each comparison. The order of
 * models and benchmarks is kept as given.
 */
export function winRateStatistics(
  comparisons: ReadonlyArray<{
    model: string;
    perBenchmark: ReadonlyArray<{ benchmark: string; verdicts: readonly StoredVerdict[] }>;
  }>,
): WinRateStatistics {
  const { resamples, level, seed } = BOOTSTRAP;
  const at = (...names: string[]) => ({ resamples, level, seed: streamSeed(seed, ...names) });
  return {
    method: STATISTICS_METHOD,
    resamples,
    level,
    seed,
    lengthUnit: 'characters',
    comparisons: comparisons.map(({ model, perBenchmark }) => {
      const benchmarks = perBenchmark.map(({ benchmark, verdicts }) => ({
        benchmark,
        ...cellStatistics([verdicts], at(model, benchmark)),
      }));
      // With one benchmark the overall row is that benchmark's, the same interval and not a second draw of it.
      const overall =
        benchmarks.length === 1
          ? (({ benchmark: _b, ...cell }) => cell)(benchmarks[0])
          : cellStatistics(
              perBenchmark.map((b) => b.verdicts),
              at(model, '(overall)'),
            );
      return { model, benchmarks, overall };
    }),
  };
}
