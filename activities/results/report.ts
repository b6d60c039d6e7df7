/**
 * The win-rate report: a JSON-ready object and a Markdown table, one row per compared model (e.g. each stage's
 * model) against the same baseline (One-off), one column per benchmark, then the average and the outcome counts.
 */
import { convergenceMarkdown, type ConvergenceFlag } from '../../common/convergence';
import { InvalidDataError } from '../../common/failures';
import type { CellStatistics, WinRateInterval, WinRateStatistics } from './statistics';
import { summariseWinRates, type BenchmarkWinRate, type OutcomeCounts } from './win-rate';
import type { OrderingPoint } from '../types';

export const WIN_RATE_RULE =
  'two orders per prompt (baseline shown first, then candidate shown first); ' +
  'win = better in one order and not worse in the other, tie = tied in both or better in one and worse in the other, ' +
  'loss otherwise; failed = a reply did not parse; win rate = 100 * (W + T/2) / N - 50 with N counting every prompt, failed included';

export interface WinRateReportInput {
  /** The judge: a model name such as `gpt-4-0613`, or the offline judge's label. */
  judge: string;
  judgePromptVersion?: string;
  /** The model every row is compared against, e.g. `one-off`. */
  baseline: string;
  comparisons: ReadonlyArray<{
    model: string;
    perBenchmark: ReadonlyArray<{ benchmark: string; counts: OutcomeCounts }>;
  }>;
}

export interface WinRateComparison {
  model: string;
  baseline: string;
  benchmarks: BenchmarkWinRate[];
  /** Plain mean of this row's benchmark win rates. */
  average: number;
  /** Counts summed over this row's benchmarks. */
  totals: OutcomeCounts;
}

export interface WinRateReport {
  judge: string;
  judgePromptVersion?: string;
  rule: string;
  baseline: string;
  /** Column order: every benchmark in first-seen order. */
  benchmarks: string[];
  comparisons: WinRateComparison[];
}

function sumCounts(all: OutcomeCounts[]): OutcomeCounts {
  const total: OutcomeCounts = { win: 0, tie: 0, loss: 0, failed: 0, n: 0, positionInconsistent: 0 };
  for (const c of all) for (const k of Object.keys(total) as Array<keyof OutcomeCounts>) total[k] += c[k];
  return total;
}

export function buildWinRateReport(input: WinRateReportInput): WinRateReport {
  if (input.comparisons.length === 0) throw new InvalidDataError('win-rate report: no comparisons');
  const benchmarks: string[] = [];
  const comparisons = input.comparisons.map(({ model, perBenchmark }) => {
    const seen = new Set<string>();
    for (const { benchmark } of perBenchmark) {
      if (seen.has(benchmark)) throw new InvalidDataError(`win-rate report: ${model} lists ${benchmark} twice`);
      seen.add(benchmark);
      if (!benchmarks.includes(benchmark)) benchmarks.push(benchmark);
    }
    const summary = summariseWinRates(perBenchmark);
    return {
      model,
      baseline: input.baseline,
      benchmarks: summary.benchmarks,
      average: summary.average,
      totals: sumCounts(summary.benchmarks.map((b) => b.counts)),
    };
  });
  const report: WinRateReport = {
    judge: input.judge,
    rule: WIN_RATE_RULE,
    baseline: input.baseline,
    benchmarks,
    comparisons,
  };
  if (input.judgePromptVersion !== undefined) report.judgePromptVersion = input.judgePromptVersion;
  return report;
}

/**
 * Per-ordering win-rate curves (`evaluation.controls`): the paper's ascending stages beside the random-difficulty
 * control and the descending order, each stage's model against the same baseline. Built from the report's rows, so
 * the numbers are the table's numbers, regrouped.
 */
export function orderingCurves(
  report: WinRateReport,
  orderings: Readonly<Record<string, readonly string[]>>,
): Record<string, OrderingPoint[]> {
  const rows = new Map(report.comparisons.map((c) => [c.model, c]));
  return Object.fromEntries(
    Object.entries(orderings).map(([ordering, models]) => [
      ordering,
      models.flatMap((model, index) => {
        const row = rows.get(model);
        if (row === undefined) return [];
        const benchmarks = Object.fromEntries(row.benchmarks.map((b) => [b.benchmark, b.winRate]));
        return [{ stage: index + 1, model, average: row.average, benchmarks }];
      }),
    ]),
  );
}

/** Signed, one decimal: `+3.8`, `-1.2`, `+0.0` (never `-0.0`). */
export function formatWinRate(value: number): string {
  const fixed = value.toFixed(1);
  if (fixed === '-0.0') return '+0.0';
  return fixed.startsWith('-') ? fixed : `+${fixed}`;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** A Markdown table row of escaped cells. */
export const markdownRow = (cells: readonly unknown[]) => `| ${cells.join(' | ')} |`;

/**
 * One row of the win-rate table after the model: each benchmark's win rate (`—` where the row lacks it; its average is
 * then over fewer benchmarks than the others'), the average, W/T/L/F and the prompts whose orders disagree.
 */
export function winRateCells(report: WinRateReport, row: WinRateComparison): string[] {
  const rate = new Map(row.benchmarks.map((b) => [b.benchmark, formatWinRate(b.winRate)]));
  const t = row.totals;
  return [
    ...report.benchmarks.map((name) => rate.get(name) ?? '—'),
    formatWinRate(row.average),
    `${t.win}/${t.tie}/${t.loss}/${t.failed}`,
    String(t.positionInconsistent),
  ];
}

/**
 * Markdown: a header naming the judge and the rule, then the table. A model in `unreliable` (a training in the
 * comparison did not converge) is marked so.
 */
export function renderWinRateMarkdown(report: WinRateReport, unreliable: ReadonlySet<string> = new Set()): string {
  const version = report.judgePromptVersion ? ` (prompt ${report.judgePromptVersion})` : '';
  const lines = [
    `Judge: ${report.judge}${version}. Rule: ${report.rule}.`,
    '',
    `| Model vs ${cell(report.baseline)} | ${report.benchmarks.map(cell).join(' | ')} | Average | W/T/L/F | Orders disagree |`,
    `|---|${report.benchmarks.map(() => '---:|').join('')}---:|---|---:|`,
    ...report.comparisons.map((row) =>
      markdownRow([
        `${cell(row.model)}${unreliable.has(row.model) ? ' (unreliable)' : ''}`,
        ...winRateCells(report, row),
      ]),
    ),
  ];
  return `${lines.join('\n')}\n`;
}

/** A share as a percentage with one decimal; `—` for none. */
export const pct = (x: number | null) => (x === null ? '—' : `${(100 * x).toFixed(1)}%`);
/** `digits` decimals; `—` for a number that is missing or not finite. */
export const fixed = (x: number | null | undefined, digits = 3) =>
  x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);

/** A p-value as people read it: three significant digits, `<0.001` below that. */
export function formatPValue(p: number): string {
  if (p < 0.001) return '<0.001';
  return p >= 0.1 ? p.toFixed(2) : p.toFixed(3);
}

/** `[-12.5, +8.3]`; `—` when the cell had no prompts. */
export function formatInterval(i: WinRateInterval): string {
  return Number.isFinite(i.low) ? `[${formatWinRate(i.low)}, ${formatWinRate(i.high)}]` : '—';
}

/** Whether the statistics count re-asks (the judging recorded them), so the tables show that column. */
export const countsReasks = (stats: WinRateStatistics) => stats.comparisons.some((c) => c.overall.reasks !== undefined);

/**
 * The rows of the table beside the win-rate table, as [model, benchmark (undefined: overall), ...cells]: for each
 * model, every benchmark and then (with several) the overall row, the paper's win rate with its bootstrap interval,
 * the sign test, the position-bias rate, parse failures, re-asks and answer lengths.
 */
export function statisticsRows(report: WinRateReport, stats: WinRateStatistics) {
  const reasks = countsReasks(stats);
  return stats.comparisons.flatMap((model) => {
    const row = report.comparisons.find((c) => c.model === model.model);
    const rateOf = new Map(row?.benchmarks.map((b) => [b.benchmark, b.winRate]));
    type Row = [benchmark: string | undefined, rate: number | undefined, s: CellStatistics];
    const cells = model.benchmarks.map((b): Row => [b.benchmark, rateOf.get(b.benchmark), b]);
    if (model.benchmarks.length > 1) cells.push([undefined, row?.average, model.overall]);
    return cells.map(([name, rate, s]): [string, string | undefined, ...string[]] => [
      model.model,
      name,
      rate === undefined ? '—' : formatWinRate(rate),
      formatInterval(s.interval),
      `${s.signTest.wins}–${s.signTest.losses}`,
      formatPValue(s.signTest.pValue),
      pct(s.positionBias.rate),
      `${s.parseFailures.prompts}/${s.parseFailures.replies}`,
      ...(reasks ? [String(s.reasks ?? '—')] : []),
      `${fixed(s.meanChars.candidate, 0)}/${fixed(s.meanChars.baseline, 0)}`,
    ]);
  });
}

/** The statistics table in Markdown, after a line on how its numbers are computed. */
export function renderStatisticsMarkdown(report: WinRateReport, stats: WinRateStatistics): string {
  const reasks = countsReasks(stats);
  const lines = [
    `Beside the win rate: ${Math.round(stats.level * 100)}% bootstrap interval (${stats.resamples} resamples of the ` +
      `prompts, seed ${stats.seed}); sign test = two-sided exact binomial on wins vs losses (ties, failures left out); ` +
      'position bias = share of prompts judged in both orders whose preference flips with the order; ' +
      `lengths in ${stats.lengthUnit}.`,
    '',
    `| Model vs ${cell(report.baseline)} | Benchmark | Win rate | ${Math.round(stats.level * 100)}% CI | W–L | ` +
      `Sign test p | Position bias | Parse failures (prompts/replies) |${reasks ? ' Re-asks |' : ''} ` +
      'Mean length (model/baseline) |',
    `|---|---|---:|---|---:|---:|---:|---:|${reasks ? '---:|' : ''}---:|`,
    ...statisticsRows(report, stats).map(([model, name, ...cells]) =>
      markdownRow([cell(model), name === undefined ? '**overall**' : cell(name), ...cells]),
    ),
  ];
  return `${lines.join('\n')}\n`;
}

/** The offline judge is not the paper's: every view of the numbers says so. */
export const OFFLINE_NOTE =
  "Offline evaluation: scores come from a reference-based judge, not from the paper's GPT-4 judge.";

/** results.md: the offline judge's note, the win-rate table, the statistics beside it and the convergence warning. */
export function resultsMarkdown({ results, statistics, convergence: { flags, unreliable } }: EvaluatedResults): string {
  return (
    `${results.offline ? `> ${OFFLINE_NOTE}\n\n` : ''}${renderWinRateMarkdown(results, unreliable)}\n` +
    `${renderStatisticsMarkdown(results, statistics)}${convergenceMarkdown(flags, unreliable)}`
  );
}

/** What results.md shows: the report, its statistics, and the trainings that did not converge. */
export interface EvaluatedResults {
  results: WinRateReport & { offline?: boolean };
  statistics: WinRateStatistics;
  convergence: { flags: readonly ConvergenceFlag[]; unreliable: ReadonlySet<string> };
}
