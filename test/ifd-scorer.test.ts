import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'mocha';
import { startRun } from '../client';
import { toJsonl } from '../activities/artifacts/jsonl';
import { scoreCompareKeys, scoreKeys, segmentKeys } from '../activities/artifacts/run-keys';
import { loadRunReportData } from '../activities/report/run-data';
import { renderReportMarkdown } from '../activities/report/report-markdown';
import { renderReportHtml } from '../activities/report/report-html';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import type { ScoreAgreement, ScoreResult } from '../activities/types';
import { InvalidDataError } from '../common/failures';
import { OFFLINE_SCORER_LABEL } from '../activities/score/offline-heuristic-scorer';
import { spearman } from '../activities/score/spearman';
import { balancedDemo, startHarness } from './helpers/pipeline-harness';
import { writeReportFixture } from './helpers/report-fixture';
import { venvPython } from './helpers/temporal';

const run = promisify(execFile);

describe('the IFD scorer', function () {
  this.timeout(6 * 60_000);

  it('scores on the GPU queue as pift.ifd does, cuts stages by quantiles, and reports agreement with a second scorer', async () => {
    const h = await startHarness();
    await h.startGpuWorker();
    // Two rows of each of the 12 demo families: 24 rows, easy to hard.
    const rows = balancedDemo(2);
    const dataset = await h.upload('ifd/train.jsonl', toJsonl(rows));
    const runId = 'ifd-run';
    const started = await startRun(
      h.temporal.client,
      {
        dataset,
        runId,
        store: h.storeUri,
        gpuTaskQueue: h.gpuQueue,
        scorer: { kind: 'ifd', compareWith: { kind: 'offline' }, ifdBatchSize: 5 },
        training: { mode: 'export-only', maxLength: 128 },
      },
      { taskQueue: h.cpuQueue },
    );
    const result = await started.handle.result();
    assert.equal(result.scorer, 'ifd:builtin:tiny-llama');

    // The run's scores are the Python module's own output for the run's dataset, line for line. The module runs in
    // the background while the runs below go on (its own process), and its output is compared once it is done.
    const work = mkdtempSync(join(tmpdir(), 'ifd-check-'));
    writeFileSync(join(work, 'rows.jsonl'), await h.store.getText(`${runId}/score/dataset.jsonl`));
    const config = {
      model_name_or_path: 'builtin:tiny-llama',
      input_file: join(work, 'rows.jsonl'),
      output_file: join(work, 'ifd.jsonl'),
      max_length: 128,
      model_seed: 3517,
      batch_size: 5,
    };
    writeFileSync(join(work, 'ifd.json'), JSON.stringify(config));
    const ownScores = run(venvPython, ['-m', 'pift.ifd', join(work, 'ifd.json')], {
      cwd: work,
      env: { ...process.env, HF_HUB_OFFLINE: '1' },
    }).then(() =>
      readFileSync(join(work, 'ifd.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { id: string | number; score: number }),
    );
    ownScores.catch(() => undefined);
    const stored = (await h.store.getText(`${runId}/score/scores.jsonl`))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; score: number });
    assert.equal(stored.length, rows.length);
    assert.ok(stored.every((r) => Number.isFinite(r.score) && r.score > 0));

    // No 1-5 thresholds: three equal stages cut at the scores' terciles.
    assert.deepEqual(
      result.stages.map((s) => s.rows),
      [8, 8, 8],
    );
    const summary = JSON.parse(await h.store.getText(`${runId}/segment/summary.json`)) as {
      rule: string;
      thresholds: number[];
    };
    assert.equal(summary.rule, 'quantiles');
    const sorted = stored.map((r) => r.score).sort((a, b) => a - b);
    assert.deepEqual(summary.thresholds, [sorted[8], sorted[16]]);
    for (let k = 1; k < result.stages.length; k++)
      assert.ok(result.stages[k - 1].maxScore! < result.stages[k].minScore!);

    // The score step's result: the IFD histogram in round bins, and the offline heuristic's agreement with it.
    const manifest = JSON.parse(await h.store.getText(`${runId}/score/manifest.json`)) as { result: ScoreResult };
    const histogram = manifest.result.histogram;
    assert.equal(
      Object.values(histogram).reduce((a, b) => a + b, 0),
      rows.length,
    );
    assert.ok(Object.keys(histogram).length <= 12 && !('failed' in histogram));
    assert.equal(manifest.result.offline, true);
    const agreement = JSON.parse(await h.store.getText(scoreCompareKeys(runId).agreement.result)) as ScoreAgreement;
    assert.equal(agreement.rows, rows.length);
    assert.equal(agreement.primary.scorer, 'ifd:builtin:tiny-llama');
    assert.equal(agreement.secondary.scorer, OFFLINE_SCORER_LABEL);
    assert.ok(agreement.spearman !== null && agreement.spearman >= -1 && agreement.spearman <= 1);
    assert.deepEqual(result.scoreAgreement, {
      scorer: agreement.secondary.scorer,
      spearman: agreement.spearman,
      rows: rows.length,
    });
    // The compared scorer's own file, beside the run's scores, not used for the stages.
    const compared = (await h.store.getText(`${runId}/score/compare/scores.jsonl`)).trim().split('\n');
    assert.equal(compared.length, rows.length);

    const history = await started.handle.fetchHistory();
    const scheduled = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes)
      .filter((a) => a?.activityType?.name)
      .map((a) => `${a!.activityType!.name}@${a!.taskQueue!.name === h.gpuQueue ? 'gpu' : 'cpu'}`);
    assert.deepEqual(scheduled, [
      'preflight@cpu',
      'scoreIfd@gpu',
      'scoreDifficulty@cpu',
      'scoreAgreement@cpu',
      'segmentStages@cpu',
      'exportStages@cpu',
    ]);

    // A second start of the same run reuses every step.
    const again = await (
      await startRun(
        h.temporal.client,
        {
          dataset,
          runId,
          store: h.storeUri,
          gpuTaskQueue: h.gpuQueue,
          scorer: { kind: 'ifd', compareWith: { kind: 'offline' }, ifdBatchSize: 5 },
          training: { mode: 'export-only', maxLength: 128 },
        },
        { taskQueue: h.cpuQueue },
      )
    ).handle.result();
    assert.deepEqual(again.stages, result.stages);
    const reused = JSON.parse(await h.store.getText(`${runId}/score/manifest.json`)) as { result: ScoreResult };
    assert.equal(reused.result.sha256, manifest.result.sha256);

    // The other way round: scores the dataset carries (1, 3, 5 by the demo's level) cut by the paper's thresholds,
    // with IFD as the second scorer on the GPU queue; its scores are byte for byte the first run's.
    const level = { easy: 1, medium: 3, hard: 5 } as Record<string, number>;
    const scoredDataset = await h.upload(
      'ifd/scored.jsonl',
      toJsonl(rows.map((r) => ({ ...r, score: level[r.level] }))),
    );
    const compareRun = 'ifd-compare-run';
    const second = await startRun(
      h.temporal.client,
      {
        dataset: scoredDataset,
        runId: compareRun,
        store: h.storeUri,
        gpuTaskQueue: h.gpuQueue,
        scorer: { kind: 'file', compareWith: { kind: 'ifd' }, ifdBatchSize: 5 },
        training: { mode: 'export-only', maxLength: 128 },
      },
      { taskQueue: h.cpuQueue },
    );
    const secondResult = await second.handle.result();
    assert.deepEqual(
      secondResult.stages.map((s) => s.rows),
      [8, 8, 8],
    );
    assert.match(secondResult.scorer, /^file:.*#score$/);
    assert.equal(secondResult.scoreAgreement?.scorer, 'ifd:builtin:tiny-llama');
    assert.equal(
      await h.store.getText(`${compareRun}/score/compare/scores.jsonl`),
      await h.store.getText(`${runId}/score/scores.jsonl`),
    );
    const levels = rows.map((r) => level[r.level]);
    assert.equal(
      secondResult.scoreAgreement?.spearman,
      spearman(
        levels,
        stored.map((r) => r.score),
      ),
    );
    const secondActivities = (await second.handle.fetchHistory()).events
      ?.map((e) => e.activityTaskScheduledEventAttributes)
      .filter((a) => a?.activityType?.name)
      .map((a) => `${a!.activityType!.name}@${a!.taskQueue!.name === h.gpuQueue ? 'gpu' : 'cpu'}`);
    assert.deepEqual(secondActivities?.slice(1, 4), ['scoreDifficulty@cpu', 'scoreIfd@gpu', 'scoreAgreement@cpu']);

    assert.deepEqual(
      stored,
      (await ownScores).map((r) => ({ ...r, id: String(r.id) })),
    );
  });

  it('needs quantiles or random stages: thresholds on the 1-5 scale are refused, naming stages.rule', () => {
    const cfg = resolvePipelineInput({ dataset: 'data/x.jsonl', scorer: { kind: 'ifd' } }, 'wf', {});
    assert.equal(cfg.stages.rule, 'quantiles');
    assert.equal(
      resolvePipelineInput({ dataset: 'd.jsonl', scorer: { kind: 'ifd' }, stages: { rule: 'random' } }, 'wf', {}).stages
        .rule,
      'random',
    );
    // Other scorers keep the paper's thresholds.
    assert.equal(resolvePipelineInput({ dataset: 'd.jsonl' }, 'wf', {}).stages.rule, 'thresholds');
    assert.throws(
      () =>
        resolvePipelineInput({ dataset: 'd.jsonl', scorer: { kind: 'ifd' }, stages: { rule: 'thresholds' } }, 'wf', {}),
      (err: unknown) => err instanceof InvalidDataError && /^input\.stages\.rule: /.test(err.message),
    );
    assert.throws(
      () =>
        resolvePipelineInput(
          { dataset: 'd.jsonl', scorer: { kind: 'offline', compareWith: { kind: 'offline' } } },
          'wf',
          {},
        ),
      /input\.scorer\.compareWith\.kind: "offline" is already the scorer/,
    );
  });

  it('puts the agreement line in report.md and the second histogram beside the first in report.html', async () => {
    const { store, runId } = await writeReportFixture();
    const agreement: ScoreAgreement = {
      spearman: 0.4321,
      rows: 300,
      primary: { scorer: 'offline-heuristic-v1', histogram: { 1: 100, 3: 100, 5: 100 } },
      secondary: { scorer: 'ifd:builtin:tiny-llama', histogram: { '0.8': 120, '0.9': 150, '1': 30 }, scoresUri: 'x' },
    };
    await store.put(scoreCompareKeys(runId).agreement.result, JSON.stringify(agreement));
    const data = await loadRunReportData(store, runId);
    const md = renderReportMarkdown(data);
    assert.match(
      md,
      /Agreement with a second scorer, ifd:builtin:tiny-llama \(not used for the stages\): Spearman's ρ = 0\.432 over the 300 rows both scored\./,
    );
    assert.match(md, /\| 0\.9 \| 150 \|/);
    const html = renderReportHtml(data);
    const charts = html.indexOf('id="chart-difficulty"');
    const second = html.indexOf('id="chart-agreement"');
    assert.ok(charts > 0 && second > charts, 'the agreement chart follows the difficulty histogram');
    assert.match(html, /Second scorer: ifd:builtin:tiny-llama \(Spearman ρ 0\.432\)/);
  });

  it('bins IFD scores in the report by a round width, not the 1-5 scale, coloured by quantile stage', async () => {
    const { store, runId } = await writeReportFixture();
    const scores = Array.from({ length: 30 }, (_, i) => ({ id: `r${i}`, score: 0.31 + i * 0.03 }));
    await store.put(scoreKeys(runId).scores, toJsonl(scores.map((r) => ({ ...r, scorer: 'ifd:builtin:tiny-llama' }))));
    const thresholds = [scores[10].score, scores[20].score];
    await store.put(
      segmentKeys(runId).summary,
      JSON.stringify({
        rule: 'quantiles',
        thresholds,
        stages: [1, 2, 3].map((stage) => ({ stage, rows: 10, minScore: null, maxScore: null })),
        oneOff: 30,
        heldout: 0,
        unscored: 0,
      }),
    );
    const data = await loadRunReportData(store, runId);
    const bins = data.scores!.histogram;
    // 0.31 .. 1.18: nine bins 0.1 wide with clean edges.
    assert.deepEqual(
      bins.map((b) => [b.low, b.high]),
      [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1].map((low) => [low, Number((low + 0.1).toFixed(1))]),
    );
    assert.equal(
      bins.reduce((n, b) => n + b.rows, 0),
      30,
    );
    assert.deepEqual(
      [0, 1, 2].map((k) => bins.reduce((n, b) => n + b.byStage[k], 0)),
      [10, 10, 10],
    );
    const md = renderReportMarkdown(data);
    assert.match(md, /\| 0\.3–0\.4 \| 3 \| 1: 3 \|/);
    assert.match(renderReportHtml(data), /IFD: loss given the instruction \/ loss alone/);
  });
});
