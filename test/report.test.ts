/// <reference lib="dom" />
import { toJsonl } from '../activities/artifacts/jsonl';
import { commitManifest } from '../activities/artifacts/manifest';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { after, before, describe, it } from 'mocha';
import { readManifest } from '../activities/artifacts/manifest';
import { reportKeys } from '../activities/artifacts/run-keys';
import { depsFromEnv } from '../activities/deps';
import { escapeHtml } from '../activities/report/report-html';
import { lossSteps } from '../activities/artifacts/training-curves';
import { generationSummary, loadRunReportData } from '../activities/report/run-data';
import { buildRunReport, writeReport, type ReportResult } from '../activities/report/write-report';
import { LocalStore } from '../store';
import { launchChromium } from './helpers/chromium';
import { HOSTILE_ANSWER, HOSTILE_PROMPT, writeReportFixture } from './helpers/report-fixture';

describe('run report', function () {
  this.timeout(60_000);

  it('reads a run from its store: results, statistics, losses, scores, stages and sample answers', async () => {
    const { store, runId } = await writeReportFixture();
    const data = await loadRunReportData(store, runId);
    assert.deepEqual(
      data.results.comparisons.map((c) => c.model),
      ['stage-1', 'stage-2', 'stage-3'],
    );
    assert.deepEqual(
      data.training.map((t) => t.name),
      ['stage-1', 'stage-2', 'stage-3', 'one-off'],
    );
    assert.ok(data.training.every((t) => t.points.length > 0 && t.points.at(-1)!.step === t.steps));
    assert.equal(data.scores!.histogram.reduce((n, h) => n + h.rows, 0) + data.scores!.failed, 300);
    assert.deepEqual(data.segment!.thresholds, [1.5, 3.5]);
    assert.equal(data.samples.length, 6);
    assert.deepEqual(
      data.samples[0].answers.map((a) => a.model),
      ['stage-1', 'stage-2', 'stage-3', 'one-off'],
    );
    assert.equal(data.samples[0].answers[2].answer, HOSTILE_ANSWER);
  });

  it('recomputes the statistics from the stored verdicts for a run evaluated before they existed', async () => {
    const fresh = await writeReportFixture();
    const withStats = await loadRunReportData(fresh.store, fresh.runId);
    const old = await writeReportFixture({ withStatistics: false });
    const recomputed = await loadRunReportData(old.store, old.runId);
    assert.equal(recomputed.results.statistics, undefined);
    assert.deepEqual(recomputed.statistics, withStats.statistics);
  });

  it('bins finer scores a quarter wide and splits a bin that a cut crosses by stage', async () => {
    const { store, runId } = await writeReportFixture();
    const scores = [1, 1.3, 1.4, 3.49, 3.5, 4.25, 5, null];
    await store.put(
      `${runId}/score/scores.jsonl`,
      scores.map((score, i) => JSON.stringify({ id: `r${i}`, score, scorer: 'x' })).join('\n'),
    );
    const summary = JSON.parse(await store.getText(`${runId}/segment/summary.json`));
    await store.put(
      `${runId}/segment/summary.json`,
      JSON.stringify({ ...summary, rule: 'quantiles', thresholds: [1.4, 3.5] }),
    );
    const { histogram, failed } = (await loadRunReportData(store, runId)).scores!;
    assert.equal(failed, 1);
    assert.equal(histogram.length, 17, '1 to 5 in quarters, 5 in the last bin');
    assert.deepEqual(histogram[0], { low: 1, high: 1.25, rows: 1, byStage: [1, 0, 0] });
    assert.deepEqual(histogram[1], { low: 1.25, high: 1.5, rows: 2, byStage: [1, 1, 0] }, '1.3 in stage 1, 1.4 in 2');
    assert.deepEqual(histogram[9].byStage, [0, 1, 0], '3.49');
    assert.deepEqual(histogram[10].byStage, [0, 0, 1], '3.5');
    assert.deepEqual(histogram[16], { low: 5, high: 5.25, rows: 1, byStage: [0, 0, 1] });
  });

  it("names the scorer from the score step's result when the rows no longer carry it", async () => {
    const { store, runId } = await writeReportFixture();
    await store.put(`${runId}/score/scores.jsonl`, toJsonl([1, 2.5, 4].map((score, i) => ({ id: `r${i}`, score }))));
    await commitManifest(store, `${runId}/score/manifest.json`, {
      runId,
      step: 'score',
      inputsHash: 'h',
      outputs: [],
      result: { scorer: 'gpt-4-0613' },
    });
    const { scorer, histogram } = (await loadRunReportData(store, runId)).scores!;
    assert.equal(scorer, 'gpt-4-0613');
    assert.deepEqual(
      histogram.map((b) => b.rows),
      [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1],
    );
  });

  it('says how the answers were generated, where the generate steps recorded it', async () => {
    const { store, runId } = await writeReportFixture();
    const before = await buildRunReport(store, runId);
    assert.doesNotMatch(before.markdown, /Answers generated/, 'runs from before the record say nothing');
    const record = async (model: string, result: object) =>
      commitManifest(store, `${runId}/generate/${model}/manifest.json`, {
        runId,
        step: `generate/${model}`,
        inputsHash: 'h',
        outputs: [],
        result: { name: model, answers: {}, reused: false, ...result },
      });
    for (const model of ['stage-1', 'stage-2', 'stage-3', 'one-off']) {
      await record(model, { generatedBy: 'served', server: 'vllm' });
    }
    const served = await buildRunReport(store, runId);
    assert.match(served.markdown, /^Answers generated through a serving endpoint \(vllm\)\.$/m);
    assert.match(served.html, /Answers generated through a serving endpoint \(vllm\)\./);
    await record('one-off', { generatedBy: 'pift.generate' });
    const data = await loadRunReportData(store, runId);
    assert.equal(
      generationSummary(data),
      'Answers generated: stage-1 through a serving endpoint (vllm); stage-2 through a serving endpoint (vllm); ' +
        'stage-3 through a serving endpoint (vllm); one-off by pift.generate.',
    );
  });

  it('places logged losses on their optimizer steps', () => {
    // Every step logged, at most 200 kept: every stride-th from step 1, the last replaced by the final step.
    assert.deepEqual(lossSteps(3, 3).steps, [1, 2, 3]);
    assert.deepEqual(lossSteps(200, 400).steps.slice(0, 3), [1, 3, 5]);
    assert.equal(lossSteps(200, 400).steps.at(-1), 400);
    assert.deepEqual(lossSteps(4, 40).steps, [10, 20, 30, 40], 'another logging interval: spread evenly');
  });

  it('escapes user text in both files and inlines Chart.js (no request leaves the page)', async () => {
    const { store, runId } = await writeReportFixture();
    const { markdown, html } = await buildRunReport(store, runId);
    assert.ok(!html.includes(HOSTILE_ANSWER) && html.includes(escapeHtml(HOSTILE_ANSWER)));
    assert.ok(!html.includes(HOSTILE_PROMPT) && html.includes(escapeHtml(HOSTILE_PROMPT)));
    assert.ok(!markdown.includes('<img') && !markdown.includes('<script>'), 'no raw HTML from answers in report.md');
    assert.match(markdown, /## Results[\s\S]*95% CI[\s\S]*## Win rate per stage[\s\S]*## Training loss/);
    assert.match(markdown, /## Difficulty and stages[\s\S]*## Sample answers/);
    assert.match(html, /Chart\.js v4/);
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=|<img/);
  });

  it('the writeReport step commits report.md and report.html, then reuses them', async () => {
    const { store, runId } = await writeReportFixture();
    const root = (store as LocalStore).root;
    const deps = { ...depsFromEnv({}), fileRoots: [new URL(root).pathname] };
    const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const first = (await env.run(writeReport, deps, { runId, store: root })) as ReportResult;
    assert.equal(first.reused, false);
    const keys = reportKeys(runId);
    const manifest = await readManifest(store, keys.manifest);
    assert.deepEqual(
      manifest!.outputs.map((o) => o.key),
      [keys.markdown, keys.html],
    );
    const again = (await env.run(writeReport, deps, { runId, store: root })) as ReportResult;
    assert.equal(again.reused, true);
    assert.equal(again.htmlUri, first.htmlUri);
  });

  it('builds a demo-sized report in well under 5 seconds', async () => {
    const { store, runId } = await writeReportFixture();
    const started = process.hrtime.bigint();
    const { html } = await buildRunReport(store, runId);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    console.log(
      `      report of a demo-sized run: ${ms.toFixed(0)} ms, report.html ${(html.length / 1024).toFixed(0)} KiB`,
    );
    assert.ok(ms < 5000, `${ms} ms`);
  });

  it('`pift report <runId> --store` writes both files locally, prints their paths and the results table', async () => {
    const { store, runId } = await writeReportFixture({ withStatistics: false });
    const out = mkdtempSync(join(tmpdir(), 'pift-report-out-'));
    const repoRoot = resolve(__dirname, '..');
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((done) =>
      execFile(
        process.execPath,
        [
          '-r',
          'ts-node/register',
          join(repoRoot, 'client', 'cli.ts'),
          'report',
          runId,
          '--store',
          store.root,
          '--out',
          out,
        ],
        { cwd: repoRoot, env: { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true' }, timeout: 60_000 },
        (err, stdout, stderr) => done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
    assert.equal(code, 0, stderr);
    assert.match(stdout, /\| Model vs one-off \| heldout \| Average \|/);
    assert.match(stdout, /\| stage-3 \| heldout \| \+\d+\.\d \| \[/, 'the statistics, recomputed for an older run');
    for (const f of ['report.html', 'report.md']) {
      assert.ok(stdout.includes(join(out, f)), `prints the path of ${f}`);
      assert.ok(existsSync(join(out, f)));
    }
    assert.match(readFileSync(join(out, 'report.md'), 'utf8'), /^# Phased IFT run demo-report/);
  });

  describe('in headless Chromium', () => {
    let chromium: Awaited<ReturnType<typeof launchChromium>>;
    before(async () => {
      chromium = await launchChromium();
    });
    after(async () => chromium?.close());

    it('draws every chart with its data and shows the sample answers escaped', async () => {
      const { store, runId } = await writeReportFixture();
      const { html } = await buildRunReport(store, runId);
      const dir = mkdtempSync(join(tmpdir(), 'pift-report-page-'));
      const file = join(dir, 'report.html');
      writeFileSync(file, html);
      const page = await chromium.browser.newPage();
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('pageerror', (err) => errors.push(String(err)));
      page.on('request', (r) => requests.push(r.url()));
      await page.setViewport({ width: 1280, height: 900 });
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      assert.deepEqual(errors, []);
      assert.deepEqual(requests, [pathToFileURL(file).href], 'the page loads nothing but itself');

      const charts = await page.evaluate(() => {
        const w = window as unknown as {
          piftCharts: Array<{ canvas: HTMLCanvasElement; data: { datasets: Array<{ data: unknown[] }> } }>;
        };
        return w.piftCharts.map((chart) => {
          const canvas = chart.canvas;
          const pixels = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
          let painted = 0;
          for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) painted++;
          return {
            id: canvas.id,
            width: canvas.width,
            points: chart.data.datasets.reduce((n, d) => n + d.data.filter((x) => x !== null && x !== 0).length, 0),
            painted,
          };
        });
      });
      assert.deepEqual(
        charts.map((c) => c.id),
        ['chart-win-rate', 'chart-loss', 'chart-difficulty', 'chart-stage-sizes'],
      );
      for (const c of charts) {
        assert.ok(c.width > 100, `${c.id} has a size`);
        assert.ok(c.points > 0, `${c.id} has data points`);
        assert.ok(c.painted > 2000, `${c.id} drew (${c.painted} painted pixels)`);
      }

      const page2 = await page.evaluate(() => ({
        pwned: (window as unknown as { __pwned?: number }).__pwned,
        injected: document.querySelectorAll('img, script[src], .answer pre b, .sample .prompt *').length,
        answers: Array.from(document.querySelectorAll('.answer pre')).map((e) => e.textContent),
        prompt: document.querySelector('.sample .prompt')?.textContent,
        results: document.querySelector('#results-table')?.textContent,
      }));
      assert.equal(page2.pwned, undefined, 'no script from an answer or a prompt ran');
      assert.ok(page2.answers.includes(HOSTILE_ANSWER), 'the answer shows as text, exactly');
      assert.ok(page2.prompt?.startsWith(HOSTILE_PROMPT));
      assert.match(page2.results ?? '', /stage-1.*stage-2.*stage-3/s);
      assert.equal(page2.injected, 0, 'no element made from an answer or a prompt');

      const shot = join(dir, 'report.png');
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`      screenshot: ${shot}`);
      await page.close();
    });
  });
});
