/**
 * The report's charts as Chart.js configurations: plain JSON (no functions), built here and handed to Chart.js in the
 * page, so what a chart shows is decided and testable in one place.
 */
import { ONE_OFF } from '../../common/constants';
import type { RunReportData, ScoreBin } from './run-data';
import { isOpenScale } from '../results/histogram';

export interface ChartSpec {
  id: string;
  title: string;
  /** One line under the chart: how to read it. */
  note: string;
  config: { type: string; data: { labels?: string[]; datasets: Array<Record<string, unknown>> }; options: object };
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22'];
const BASELINE_COLOUR = '#555555';
const colour = (i: number) => PALETTE[i % PALETTE.length];

const axisTitle = (text: string) => ({ display: true, text });
const ROWS_AXIS = { beginAtZero: true, title: axisTitle('rows') };
const NO_LEGEND = { legend: { display: false } };

/** A chart as written below: its Chart.js configuration's fields beside its own. */
type FlatSpec = Omit<ChartSpec, 'config'> & ChartSpec['config'];
const spec = ({ id, title, note, ...config }: FlatSpec): ChartSpec => ({ id, title, note, config });

function winRateChart(data: RunReportData): ChartSpec {
  const r = data.results;
  const models = r.comparisons.map((c) => c.model);
  const stats = new Map(data.statistics.comparisons.map((c) => [c.model, c.overall.interval]));
  const datasets: Array<Record<string, unknown>> = [
    {
      type: 'bar',
      label: `${Math.round(data.statistics.level * 100)}% interval (average)`,
      data: models.map((m) => {
        const i = stats.get(m);
        return i && Number.isFinite(i.low) ? [i.low, i.high] : null;
      }),
      backgroundColor: 'rgba(31, 119, 180, 0.2)',
      borderColor: 'rgba(31, 119, 180, 0.6)',
      borderWidth: 1,
      barPercentage: 0.3,
      order: 2,
    },
    {
      type: 'line',
      label: r.benchmarks.length > 1 ? 'average' : r.benchmarks[0],
      data: r.comparisons.map((c) => c.average),
      borderColor: colour(0),
      backgroundColor: colour(0),
      borderWidth: 3,
      pointRadius: 5,
      order: 1,
    },
    // With several benchmarks, each one's curve beside their average.
    ...(r.benchmarks.length > 1 ? r.benchmarks : []).map((b, i) => ({
      type: 'line',
      label: b,
      data: r.comparisons.map((c) => c.benchmarks.find((x) => x.benchmark === b)?.winRate ?? null),
      borderColor: colour(i + 1),
      backgroundColor: colour(i + 1),
      borderDash: [6, 4],
      borderWidth: 1.5,
      pointRadius: 3,
      order: 0,
    })),
  ];
  return spec({
    id: 'chart-win-rate',
    title: `Win rate per stage against ${r.baseline}`,
    note:
      "The paper's win rate 100·(W + T/2)/N − 50 (0 = parity with the baseline) of each stage's model; the bar is its " +
      `bootstrap ${Math.round(data.statistics.level * 100)}% interval.`,
    type: 'bar',
    data: { labels: models, datasets },
    options: {
      scales: {
        y: { suggestedMin: -50, suggestedMax: 50, title: axisTitle('win rate (points)') },
        x: { title: axisTitle('model') },
      },
    },
  });
}

function lossChart(data: RunReportData): ChartSpec | undefined {
  if (!data.training.some((t) => t.points.length)) return undefined;
  // Stages run one after another: stage k's steps follow stage k-1's, so they line up with the baseline's.
  let offset = 0;
  const datasets = data.training.map((t, i) => {
    const start = t.name === ONE_OFF ? 0 : offset;
    if (t.name !== ONE_OFF) offset += t.steps;
    const c = t.name === ONE_OFF ? BASELINE_COLOUR : colour(i);
    return {
      label: t.name,
      data: t.points.map((p) => ({ x: start + p.step, y: p.loss })),
      borderColor: c,
      backgroundColor: c,
      borderWidth: t.name === ONE_OFF ? 1.5 : 2,
      borderDash: t.name === ONE_OFF ? [6, 4] : [],
      pointRadius: t.points.length > 15 ? 0 : 2,
    };
  });
  const inferred = data.training.some((t) => t.stepsInferred);
  return spec({
    id: 'chart-loss',
    title: 'Training loss per stage and the One-off baseline',
    note:
      'Stages are placed one after another; the baseline trains the same total number of optimizer steps.' +
      (inferred
        ? ' Steps are reconstructed from the trainer’s logging rule (the stored losses do not carry them).'
        : ''),
    type: 'line',
    data: { datasets },
    options: {
      parsing: true,
      scales: {
        x: { type: 'linear', title: axisTitle('optimizer step (stages cumulative)') },
        y: { title: axisTitle('training loss') },
      },
    },
  });
}

/** `1` for whole-number bins, `1.25–1.5` for finer ones. */
export const binLabel = (b: ScoreBin) =>
  b.high - b.low === 1 && Number.isInteger(b.low) ? `${b.low}` : `${b.low}–${b.high}`;

function histogramChart(data: RunReportData): ChartSpec | undefined {
  const scores = data.scores;
  if (!scores || scores.histogram.length === 0) return undefined;
  const seg = data.segment;
  const byStage = scores.histogram[0].byStage.length > 1 || (seg !== undefined && seg.rule !== 'random');
  const datasets = scores.histogram[0].byStage.map((_, i) => ({
    label: byStage ? `stage ${i + 1}` : 'rows',
    data: scores.histogram.map((b) => b.byStage[i]),
    backgroundColor: colour(i),
  }));
  const cuts = seg && seg.rule !== 'random' && seg.thresholds.length ? `cuts at ${seg.thresholds.join(', ')}` : '';
  return spec({
    id: 'chart-difficulty',
    title: 'Difficulty scores and the stage cuts',
    note:
      `Rows per difficulty score (scorer ${scores.scorer || 'unknown'}), coloured by the stage they went to` +
      `${cuts ? ` (${cuts})` : seg?.rule === 'random' ? ' (random rule: stages mix every difficulty)' : ''}` +
      `${scores.failed ? `; ${scores.failed} rows did not get a score` : ''}.`,
    type: 'bar',
    data: { labels: scores.histogram.map(binLabel), datasets },
    options: {
      scales: {
        x: {
          stacked: true,
          title: axisTitle(
            isOpenScale(scores.scorer)
              ? 'IFD: loss given the instruction / loss alone (higher = harder)'
              : 'difficulty score',
          ),
        },
        y: { stacked: true, beginAtZero: true, title: axisTitle('rows') },
      },
    },
  });
}

/** Spearman's rho to three decimals, or why there is none. */
export const rhoText = (rho: number | null) => (rho === null ? 'undefined (a constant scorer)' : rho.toFixed(3));

/** `scorer.compareWith`: the second scorer's histogram, beside the one the stages were cut from. */
function agreementChart(data: RunReportData): ChartSpec | undefined {
  const a = data.agreement;
  if (!a) return undefined;
  const bins = Object.entries(a.secondary.histogram).filter(([k]) => k !== 'failed');
  return spec({
    id: 'chart-agreement',
    title: `Second scorer: ${a.secondary.scorer} (Spearman ρ ${rhoText(a.spearman)})`,
    note:
      `Rows per score of the compared scorer; its rank agreement with ${a.primary.scorer} over the ${a.rows} rows ` +
      `both scored is Spearman's ρ = ${rhoText(a.spearman)} (1: same order, 0: unrelated, -1: reversed). ` +
      'Its scores are kept apart and not used for the stages.',
    type: 'bar',
    data: {
      labels: bins.map(([k]) => k),
      datasets: [{ label: 'rows', data: bins.map(([, n]) => n), backgroundColor: BASELINE_COLOUR }],
    },
    options: {
      plugins: NO_LEGEND,
      scales: {
        x: { title: axisTitle(isOpenScale(a.secondary.scorer) ? 'IFD (bin lower edge)' : 'difficulty score') },
        y: ROWS_AXIS,
      },
    },
  });
}

function stageSizeChart(data: RunReportData): ChartSpec | undefined {
  const seg = data.segment;
  if (!seg) return undefined;
  const labels = [...seg.stages.map((s) => `stage-${s.stage}`), ONE_OFF];
  return spec({
    id: 'chart-stage-sizes',
    title: 'Stage sizes',
    note: 'Training rows per stage; the One-off baseline trains on all of them.',
    type: 'bar',
    data: {
      labels,
      datasets: [
        {
          label: 'rows',
          data: [...seg.stages.map((s) => s.rows), seg.oneOff],
          backgroundColor: [...seg.stages.map((_, i) => colour(i)), BASELINE_COLOUR],
        },
      ],
    },
    options: {
      plugins: NO_LEGEND,
      scales: { y: ROWS_AXIS },
    },
  });
}

/** Every chart the run's data allows, in reading order. */
export function reportCharts(data: RunReportData): ChartSpec[] {
  return [winRateChart(data), lossChart(data), histogramChart(data), agreementChart(data), stageSizeChart(data)].filter(
    (c): c is ChartSpec => c !== undefined,
  );
}
