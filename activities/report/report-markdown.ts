import { fixed, formatInterval, formatWinRate, resultsMarkdown, winRateCells } from '../results/report';
import { generationSummary, type RunReportData } from './run-data';
import { binLabel, rhoText } from './report-charts';

const MARKDOWN_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '|': '\\|', '`': '\\`' };
/** Text from users or models inside a Markdown table cell: no HTML, no table breaks, line breaks kept visible. */
export const markdownCell = (text: string) => text.replace(/[&<>|`]|\r?\n/g, (c) => MARKDOWN_ESCAPES[c] ?? '<br>');

/** report.md: the same content as report.html, as tables instead of charts. */
export function renderReportMarkdown(data: RunReportData): string {
  const r = data.results;
  const out: string[] = [`# Phased IFT run ${markdownCell(data.runId)}`, '', '## Results', '', resultsMarkdown(data)];

  out.push('## Win rate per stage', '', `Against ${markdownCell(r.baseline)}; the paper's per-stage curve.`, '');
  out.push(
    `| Model | Average | ${Math.round(data.statistics.level * 100)}% CI | ${r.benchmarks.map(markdownCell).join(' | ')} |`,
  );
  out.push(`|---|---:|---|${r.benchmarks.map(() => '---:|').join('')}`);
  for (const c of r.comparisons) {
    const s = data.statistics.comparisons.find((x) => x.model === c.model);
    const rates = winRateCells(r, c).slice(0, r.benchmarks.length);
    out.push(
      `| ${markdownCell(c.model)}${data.convergence.unreliable.has(c.model) ? ' (unreliable)' : ''} | ${formatWinRate(c.average)} | ${s ? formatInterval(s.overall.interval) : '—'} | ${rates.join(' | ')} |`,
    );
  }
  out.push('');

  if (data.training.length) {
    out.push(
      '## Training loss',
      '',
      '| Training | Steps | First loss | Last loss | Logged points | Converged |',
      '|---|---:|---:|---:|---:|---|',
    );
    const flagOf = new Map(data.convergence.flags.map((f) => [f.name, f.reason]));
    for (const t of data.training) {
      const converged = flagOf.has(t.name) ? `**no**: ${markdownCell(flagOf.get(t.name)!)}` : 'yes';
      out.push(
        `| ${markdownCell(t.name)} | ${t.steps} | ${fixed(t.lossFirst)} | ${fixed(t.lossLast)} | ${t.points.length} | ${converged} |`,
      );
    }
    out.push('', '(First and last: means of the first and last few logged losses, as the trainer reports them.)', '');
  }

  if (data.segment) {
    const seg = data.segment;
    out.push('## Difficulty and stages', '');
    if (data.scores) out.push(`Scorer: ${markdownCell(data.scores.scorer || 'unknown')}.`);
    out.push(
      `Rule: ${seg.rule}${seg.thresholds.length ? `, cuts at ${seg.thresholds.join(', ')}` : ''}. ` +
        `One-off rows: ${seg.oneOff}; held out: ${seg.heldout}; unscored: ${seg.unscored}.`,
      '',
      '| Stage | Rows | Min score | Max score |',
      '|---|---:|---:|---:|',
    );
    for (const s of seg.stages)
      out.push(`| ${s.stage} | ${s.rows} | ${fixed(s.minScore, 2)} | ${fixed(s.maxScore, 2)} |`);
    out.push('');
    if (data.scores) {
      const split = seg.rule !== 'random';
      out.push(`| Score | Rows |${split ? ' Rows per stage |' : ''}`, `|---:|---:|${split ? '---|' : ''}`);
      for (const b of data.scores.histogram) {
        const perStage = b.byStage.map((n, i) => (n ? `${i + 1}: ${n}` : '')).filter(Boolean);
        out.push(`| ${binLabel(b)} | ${b.rows} |${split ? ` ${perStage.join(', ')} |` : ''}`);
      }
      if (data.scores.failed) out.push(`| unparsed | ${data.scores.failed} |${split ? ' — |' : ''}`);
      out.push('');
    }
    const a = data.agreement;
    if (a) {
      out.push(
        `Agreement with a second scorer, ${markdownCell(a.secondary.scorer)} (not used for the stages): ` +
          `Spearman's ρ = ${rhoText(a.spearman)} over the ${a.rows} rows both scored.`,
        '',
        `| ${markdownCell(a.secondary.scorer)} score | Rows |`,
        '|---:|---:|',
        ...Object.entries(a.secondary.histogram).map(([k, n]) => `| ${markdownCell(k)} | ${n} |`),
        '',
      );
    }
  }

  if (data.samples.length) {
    out.push('## Sample answers', '');
    const generation = generationSummary(data);
    if (generation) out.push(generation, '');
    for (const s of data.samples) {
      out.push(`### ${markdownCell(s.benchmark)} · ${markdownCell(s.id)}`, '');
      out.push(`**Prompt:** ${markdownCell(s.instruction)}${s.input ? `<br>**Input:** ${markdownCell(s.input)}` : ''}`);
      if (s.reference !== undefined) out.push('', `**Reference:** ${markdownCell(s.reference)}`);
      out.push('', `| Model | vs ${markdownCell(r.baseline)} | Answer |`, '|---|---|---|');
      for (const a of s.answers) {
        out.push(`| ${markdownCell(a.model)} | ${a.outcome ?? ''} | ${markdownCell(a.answer) || '*(empty)*'} |`);
      }
      out.push('');
    }
  }
  return `${out.join('\n').trimEnd()}\n`;
}
