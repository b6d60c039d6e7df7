/**
 * Win rate of the candidate against the baseline, as the released win_tie_loss_stat.py computes it:
 *
 *   winRate = 100 * (wins + ties / 2) / N - 50
 *
 * a signed percentage (0 = parity, +50 = every prompt won, -50 = every prompt lost). N is the number of prompts
 * in the benchmark, failed ones included: a prompt whose reply did not parse in either order counts for neither
 * side but still weighs in N (the released script skips it in the counts and divides by the file's length).
 * The average over benchmarks is their plain (unweighted) mean.
 */
import { InvalidDataError } from '../../common/failures';
import type { Outcome } from './verdict';

export interface OutcomeCounts {
  win: number;
  tie: number;
  loss: number;
  failed: number;
  /** Every prompt: win + tie + loss + failed. */
  n: number;
  /** Extra, not in the paper: prompts whose two orders disagreed (both parsed, different preferences). */
  positionInconsistent: number;
}

export interface BenchmarkWinRate {
  benchmark: string;
  counts: OutcomeCounts;
  /** Signed percentage, unrounded. */
  winRate: number;
}

export function countOutcomes(verdicts: Iterable<{ outcome: Outcome; positionInconsistent?: boolean }>): OutcomeCounts {
  const counts: OutcomeCounts = { win: 0, tie: 0, loss: 0, failed: 0, n: 0, positionInconsistent: 0 };
  for (const v of verdicts) {
    counts[v.outcome]++;
    counts.n++;
    if (v.positionInconsistent) counts.positionInconsistent++;
  }
  return counts;
}

/** 100 * (wins + ties/2) / n - 50, where n counts every prompt of the benchmark. */
export function winRate(counts: { win: number; tie: number; n: number }, benchmark = 'benchmark'): number {
  if (!(counts.n > 0)) throw new InvalidDataError(`${benchmark}: no prompts, the win rate is undefined`);
  if (counts.win + counts.tie > counts.n) {
    throw new InvalidDataError(`${benchmark}: wins + ties (${counts.win + counts.tie}) exceed N (${counts.n})`);
  }
  return (100 * (counts.win + counts.tie / 2)) / counts.n - 50;
}

/** Per-benchmark counts and win rates, in the order given, and their plain mean. */
export function summariseWinRates(perBenchmark: ReadonlyArray<{ benchmark: string; counts: OutcomeCounts }>): {
  benchmarks: BenchmarkWinRate[];
  average: number;
} {
  if (perBenchmark.length === 0) throw new InvalidDataError('no benchmarks to summarise');
  const benchmarks = perBenchmark.map(({ benchmark, counts }) => ({
    benchmark,
    counts,
    winRate: winRate(counts, benchmark),
  }));
  const average = benchmarks.reduce((sum, b) => sum + b.winRate, 0) / benchmarks.length;
  return { benchmarks, average };
}
