/**
 * Whether each training of a run converged, read from its recorded losses. A win rate against a model that never
 * trained says nothing about the method (the One-off at a learning rate too high for it lost to every stage),
 * so a training that did not converge is flagged, and every win rate it takes part in is marked unreliable.
 */

/** What the trainer recorded for one training: the mean of its first and last few losses, and the logged losses. */
export interface LossRecord {
  name: string;
  lossFirst: number | null | undefined;
  lossLast: number | null | undefined;
  losses: ReadonlyArray<number | null>;
}

export interface ConvergenceFlag {
  name: string;
  reason: string;
}

/** The last loss must be at least this share below the first: a training that learned anything gets there. */
export const MIN_LOSS_FALL = 0.1;
/** Far above the other trainings: this many times their median last loss, and at least FAR_ABOVE_NATS above it. */
export const FAR_ABOVE_FACTOR = 3;
export const FAR_ABOVE_NATS = 0.5;

const finite = (x: number | null | undefined): x is number => typeof x === 'number' && Number.isFinite(x);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const fmt = (x: number) => x.toFixed(3);

/**
 * The trainings that did not converge, each with the reason: a loss that is NaN or infinite, a last loss not clearly
 * below the first (unless it ends at or below the other trainings' median), or a last loss far above the other
 * trainings'. The comparison is at the end of training, where every ordering (stages, controls, One-off) has spent
 * the same total steps.
 */
export function convergenceFlags(records: readonly LossRecord[]): ConvergenceFlag[] {
  const flags: ConvergenceFlag[] = [];
  const lastOf = new Map(records.filter((r) => finite(r.lossLast)).map((r) => [r.name, r.lossLast as number]));
  for (const r of records) {
    if (!finite(r.lossFirst) || !finite(r.lossLast) || r.losses.some((x) => !finite(x))) {
      flags.push({ name: r.name, reason: 'its training loss is NaN or infinite' });
      continue;
    }
    const others = [...lastOf].filter(([name]) => name !== r.name).map(([, loss]) => loss);
    const typical = others.length ? median(others) : undefined;
    // A later stage may start where the others end (its rows already learned): at or below them it trained well.
    const atOrBelowOthers = typical !== undefined && r.lossLast <= typical;
    // The start is the first logged loss where it is lower than the first few's mean: a run that blows up in its
    // first steps has a high mean there, and falling from that peak is not training.
    const first = r.losses[0];
    const start = finite(first) ? Math.min(first, r.lossFirst) : r.lossFirst;
    if (r.lossLast > (1 - MIN_LOSS_FALL) * start && !atOrBelowOthers) {
      flags.push({
        name: r.name,
        reason: `its loss did not fall (${fmt(start)} → ${fmt(r.lossLast)}; at least ${100 * MIN_LOSS_FALL}% lower expected)`,
      });
      continue;
    }
    if (typical === undefined) continue;
    if (r.lossLast > FAR_ABOVE_FACTOR * typical && r.lossLast - typical > FAR_ABOVE_NATS) {
      flags.push({
        name: r.name,
        reason: `its last loss ${fmt(r.lossLast)} is far above the other trainings' (median ${fmt(typical)})`,
      });
    }
  }
  return flags;
}

/** The compared models whose win rate is unreliable: all of them when the baseline is flagged, else the flagged ones. */
export function unreliableModels(flags: readonly ConvergenceFlag[], baseline: string, models: readonly string[]) {
  const flagged = new Set(flags.map((f) => f.name));
  return new Set(flagged.has(baseline) ? models : models.filter((m) => flagged.has(m)));
}

/** Markdown under the win-rate tables; empty when every training converged, so such runs' results read as before. */
export function convergenceMarkdown(flags: readonly ConvergenceFlag[], unreliable: ReadonlySet<string>): string {
  if (flags.length === 0) return '';
  const lines = [
    '',
    '**Training did not converge** — a win rate against such a model says nothing about the method:',
    '',
    ...flags.map((f) => `- ${f.name}: ${f.reason}.`),
  ];
  if (unreliable.size) lines.push('', `Unreliable win rates: ${[...unreliable].join(', ')}.`);
  return `${lines.join('\n')}\n`;
}
