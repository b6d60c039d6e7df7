/**
 * Per-ordering win-rate curves (`evaluation.controls`): the paper's ascending stages beside the random-difficulty
 * control and the descending order, each stage's model against the same baseline. Built from the report's rows, so
 * the numbers are the table's numbers, regrouped.
 */
import type { WinRateReport } from '../results/report';
import type { OrderingPoint } from '../types';

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
