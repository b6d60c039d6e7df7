/**
 * report.html: one self-contained file (Chart.js inlined, no request leaves the page), readable offline and from any
 * store. Every text that comes from a user or a model is escaped; the chart data travels as JSON in a non-executable
 * script element with `<` escaped, so no answer can close it.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { countsReasks, fixed, OFFLINE_NOTE, statisticsRows, winRateCells } from '../results/report';
import { reportCharts } from './report-charts';
import { generationSummary, type RunReportData } from './run-data';

let chartJs: string | undefined;
/** Chart.js's browser build, from the installed package (its exports map hides dist/, its main file sits beside it). */
function chartJsSource(): string {
  chartJs ??= readFileSync(join(dirname(require.resolve('chart.js')), 'chart.umd.min.js'), 'utf8');
  return chartJs;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);

/** JSON for a `<script type="application/json">`: `<` escaped, so `</script>` inside a string cannot end it. */
const scriptJson = (value: unknown) =>
  JSON.stringify(value).replace(/[<\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

const e = escapeHtml;

const headRow = (cells: readonly string[]) => `<tr>${cells.map((c) => `<th>${c}</th>`).join('')}</tr>`;
/** A table row: text cells, then right-aligned number cells. */
const tableRow = (texts: readonly string[], numbers: readonly string[]) =>
  `<tr>${texts.map((t) => `<td>${t}</td>`).join('')}${numbers.map((n) => `<td class="num">${n}</td>`).join('')}</tr>`;

function resultsTable(data: RunReportData): string {
  const r = data.results;
  const head = headRow([`Model vs ${e(r.baseline)}`, ...r.benchmarks.map(e), 'Average', 'W/T/L/F', 'Orders disagree']);
  const rows = r.comparisons.map((c) => {
    const cells = winRateCells(r, c);
    cells[r.benchmarks.length] = `<b>${cells[r.benchmarks.length]}</b>`;
    const mark = data.convergence.unreliable.has(c.model) ? ' <span class="unreliable">unreliable</span>' : '';
    return tableRow([`${e(c.model)}${mark}`], cells);
  });
  return `<table id="results-table">${head}${rows.join('')}</table>`;
}

/** Trainings that did not converge, above the tables whose win rates they make unreliable. */
function convergenceWarning(data: RunReportData): string {
  const { flags, unreliable } = data.convergence;
  if (flags.length === 0) return '';
  const items = flags.map((f) => `<li><b>${e(f.name)}</b>: ${e(f.reason)}.</li>`).join('');
  const models = [...unreliable].map(e).join(', ');
  return (
    `<div class="not-converged" id="convergence-warning"><b>Training did not converge</b> — a win rate against such ` +
    `a model says nothing about the method:<ul>${items}</ul>${models ? `Unreliable win rates: ${models}.` : ''}</div>`
  );
}

function statisticsTable(data: RunReportData): string {
  const s = data.statistics;
  const head =
    `<tr><th>Model</th><th>Benchmark</th><th>Win rate</th><th>${Math.round(s.level * 100)}% CI</th><th>W–L</th>` +
    `<th>Sign test p</th><th>Position bias</th><th>Parse failures<br>(prompts/replies)</th>` +
    `${countsReasks(s) ? '<th>Re-asks</th>' : ''}<th>Mean length, ${e(s.lengthUnit)}<br>(model/baseline)</th></tr>`;
  const rows = statisticsRows(data.results, s).map(([model, name, ...cells]) =>
    tableRow([e(model), e(name ?? 'overall')], cells),
  );
  return `<table id="statistics-table">${head}${rows.join('')}</table>`;
}

function stagesTable(data: RunReportData): string {
  const seg = data.segment;
  if (!seg) return '';
  const training = new Map(data.training.map((t) => [t.name, t]));
  const flagged = new Set(data.convergence.flags.map((f) => f.name));
  const loss = (name: string) => {
    const t = training.get(name);
    return t
      ? `<td class="num">${t.steps}</td><td class="num">${fixed(t.lossFirst)} → ${fixed(t.lossLast)}${flagged.has(name) ? ' <span class="unreliable">did not converge</span>' : ''}</td>`
      : '<td>—</td><td>—</td>';
  };
  const rows = seg.stages
    .map(
      (s) =>
        `<tr><td>stage-${s.stage}</td><td class="num">${s.rows}</td><td class="num">${fixed(s.minScore, 2)}</td>` +
        `<td class="num">${fixed(s.maxScore, 2)}</td>${loss(`stage-${s.stage}`)}</tr>`,
    )
    .join('');
  return (
    `<p>Rule <b>${e(seg.rule)}</b>${seg.thresholds.length ? `, cuts at ${seg.thresholds.map(String).join(', ')}` : ''}; ` +
    `held out ${seg.heldout}, unscored ${seg.unscored}.</p>` +
    `<table><tr><th>Stage</th><th>Rows</th><th>Min score</th><th>Max score</th><th>Steps</th><th>Loss first → last</th></tr>` +
    `${rows}<tr><td>one-off</td><td class="num">${seg.oneOff}</td><td></td><td></td>${loss('one-off')}</tr></table>`
  );
}

function samplesSection(data: RunReportData): string {
  if (!data.samples.length) return '';
  const items = data.samples.map((s) => {
    const answers = s.answers
      .map(
        (a) =>
          `<div class="answer"><div class="who">${e(a.model)}${a.outcome ? ` <span class="outcome ${e(a.outcome)}">${e(a.outcome)}</span>` : ''}</div>` +
          `<pre>${a.answer ? e(a.answer) : '<i>(empty)</i>'}</pre></div>`,
      )
      .join('');
    return (
      `<section class="sample"><h3>${e(s.benchmark)} · ${e(s.id)}</h3>` +
      `<pre class="prompt">${e(s.instruction)}${s.input ? `\n\nInput: ${e(s.input)}` : ''}</pre>` +
      (s.reference !== undefined ? `<p class="reference"><b>Reference:</b> ${e(s.reference)}</p>` : '') +
      `<div class="answers" style="grid-template-columns: repeat(${s.answers.length}, minmax(0, 1fr))">${answers}</div></section>`
    );
  });
  const generation = generationSummary(data);
  return (
    `<h2>Sample answers</h2><p>The outcome is the stage model's against ${e(data.results.baseline)}.` +
    `${generation ? ` ${e(generation)}` : ''}</p>${items.join('')}`
  );
}

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8rem 0; } td, th { border: 1px solid #ddd; padding: .25rem .55rem; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #666; font-size: .9rem; } .offline { background: #fff4d6; padding: .5rem .8rem; border-left: 4px solid #e0a800; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1.5rem; }
.chart { border: 1px solid #e4e4e4; padding: .8rem; } .chart canvas { width: 100%; height: 320px; }
.chart h3 { margin: 0 0 .4rem; font-size: 1rem; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; font: 12.5px/1.4 ui-monospace, monospace; }
.sample { border: 1px solid #e4e4e4; padding: .6rem .9rem; margin: 1rem 0; } .sample h3 { margin: 0 0 .4rem; font-size: 1rem; }
.prompt { background: #f7f7f7; padding: .4rem; } .answers { display: grid; gap: .6rem; margin-top: .6rem; }
.answer { border: 1px solid #eee; padding: .4rem; } .who { font-weight: 600; margin-bottom: .2rem; }
.outcome { font-weight: 400; font-size: .8rem; padding: 0 .35rem; border-radius: 3px; background: #eee; }
.not-converged { background: #fbe0e0; padding: .5rem .8rem; border-left: 4px solid #c62828; } .not-converged ul { margin: .3rem 0; }
.unreliable { color: #c62828; font-weight: 600; font-size: .85rem; }
.outcome.win { background: #d8f0d8; } .outcome.loss { background: #f6d6d6; } .outcome.failed { background: #f6e6b0; }
`;

/** Draws every chart from its JSON configuration; `window.piftCharts` lets a test see what drew. */
const DRAW = `
(function () {
  var specs = JSON.parse(document.getElementById('pift-chart-data').textContent);
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  window.piftCharts = specs.map(function (spec) {
    return new Chart(document.getElementById(spec.id), spec.config);
  });
})();
`;

export function renderReportHtml(data: RunReportData): string {
  const charts = reportCharts(data);
  const chartBlocks = charts
    .map(
      (c) =>
        `<div class="chart"><h3>${e(c.title)}</h3><div style="position: relative; height: 320px"><canvas id="${e(c.id)}"></canvas></div>` +
        `<p class="note">${e(c.note)}</p></div>`,
    )
    .join('');
  const r = data.results;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Phased IFT run ${e(data.runId)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Phased IFT run ${e(data.runId)}</h1>
${r.offline ? `<p class="offline">${OFFLINE_NOTE}</p>` : ''}
<p class="note">Judge: ${e(r.judge)}${r.judgePromptVersion ? ` (prompt ${e(r.judgePromptVersion)})` : ''}. Rule: ${e(r.rule)}.</p>
<h2>Results</h2>
${convergenceWarning(data)}
${resultsTable(data)}
<p class="note">Beside the win rate: ${e(data.statistics.method)}; ${data.statistics.resamples} resamples, seed ${data.statistics.seed}.</p>
${statisticsTable(data)}
<h2>Charts</h2>
<div class="charts">${chartBlocks}</div>
<h2>Stages</h2>
${stagesTable(data)}
${samplesSection(data)}
<script type="application/json" id="pift-chart-data">${scriptJson(charts)}</script>
<script>${chartJsSource()}</script>
<script>${DRAW}</script>
</body>
</html>
`;
}
