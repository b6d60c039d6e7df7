import assert from 'node:assert/strict';
import { before, describe, it } from 'mocha';
import { startRun } from '../client';
import type { PipelineInput } from '../common/settings/schema';
import { balancedDemo, demoRows, startHarness, type Harness } from './helpers/pipeline-harness';
import { stubTrainerEnv } from './helpers/stub-trainer';

const toJsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

/**
 * `evaluation.controls` on the smallest run that still has stages: 24 rows (2 per demo family), 2 stages (easy and
 * medium rows, then hard rows), one optimizer step per stage, offline scorer and judge. The order of the branches is
 * what is checked, not what the models learn: the stub trainer trains the 7 models.
 */
describe('control orderings from one start (evaluation.controls)', function () {
  this.timeout(10 * 60_000);
  let h: Harness;
  let result: Awaited<ReturnType<typeof run>>;
  const runId = 'controls-run';
  const train = balancedDemo(2);
  const levelOf = new Map(train.map((r) => [r.id, r.level]));
  const run = async (input: PipelineInput) =>
    (await startRun(h.temporal.client, input, { taskQueue: h.cpuQueue })).handle.result();

  before(async () => {
    h = await startHarness({ workerEnv: stubTrainerEnv() });
    await h.startGpuWorker();
    const dataset = await h.upload('controls/train.jsonl', toJsonl(train));
    const heldout = await h.upload('controls/heldout.jsonl', toJsonl(demoRows('heldout').slice(0, 4)));
    result = await run({
      dataset,
      runId,
      store: h.storeUri,
      gpuTaskQueue: h.gpuQueue,
      scorer: { kind: 'offline' },
      stages: { count: 2, thresholds: [3] },
      training: { epochs: 1, batchSize: 8, saveSteps: 50, heartbeatTimeout: '30 seconds' },
      evaluation: {
        benchmarks: [{ name: 'heldout', uri: heldout }],
        judge: 'offline',
        maxNewTokens: 4,
        controls: ['random', 'descending'],
      },
    });
  });

  it('trains each ordering from the base model, stage after stage, with the real stages’ step counts', () => {
    const steps = Object.fromEntries(result.training.map((t) => [t.name, t.steps]));
    assert.deepEqual(Object.keys(steps).sort(), [
      'descending-stage-1',
      'descending-stage-2',
      'one-off',
      'random-stage-1',
      'random-stage-2',
      'stage-1',
      'stage-2',
    ]);
    assert.deepEqual(
      result.stages.map((s) => s.rows),
      [16, 8],
    );
    assert.deepEqual([steps['stage-1'], steps['stage-2']], [2, 1]);
    assert.deepEqual([steps['random-stage-1'], steps['random-stage-2']], [2, 1]);
    assert.deepEqual([steps['descending-stage-1'], steps['descending-stage-2']], [1, 2]);
  });

  it('cuts the random control into stages of the real sizes, of mixed difficulty, from the same rows', async () => {
    const read = async (key: string) =>
      (await h.store.getText(key))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { id: string });
    const random = [
      await read(`${runId}/controls/random/stage-1.jsonl`),
      await read(`${runId}/controls/random/stage-2.jsonl`),
    ];
    assert.deepEqual(
      random.map((s) => s.length),
      [16, 8],
    );
    const oneOff = await read(`${runId}/segment/one-off.jsonl`);
    assert.deepEqual(
      random
        .flat()
        .map((r) => r.id)
        .sort(),
      oneOff.map((r) => r.id).sort(),
    );
    // The real first stage holds no hard row; the random one does.
    assert.ok(random[0].some((r) => levelOf.get(r.id) === 'hard'));
  });

  it('judges every ordering against the same baseline and stores each ordering’s curve', async () => {
    const evaluation = result.evaluation!;
    for (const model of ['stage-2', 'random-stage-1', 'random-stage-2', 'descending-stage-1', 'descending-stage-2'])
      assert.equal(typeof evaluation.winRates[model]?.average, 'number', model);
    const stored = JSON.parse(await h.store.getText(`${runId}/evaluate/results.json`));
    assert.equal(stored.baseline, 'one-off');
    assert.deepEqual(
      Object.fromEntries(
        Object.entries(stored.orderings as Record<string, Array<{ stage: number; model: string }>>).map(([k, v]) => [
          k,
          v.map((p) => `${p.stage}:${p.model}`),
        ]),
      ),
      {
        ascending: ['1:stage-1', '2:stage-2'],
        random: ['1:random-stage-1', '2:random-stage-2'],
        descending: ['1:descending-stage-1', '2:descending-stage-2'],
      },
    );
    for (const points of Object.values(stored.orderings as Record<string, Array<{ model: string; average: number }>>))
      for (const p of points) assert.equal(Math.round(p.average * 10) / 10, evaluation.winRates[p.model].average);
    // The existing fields keep their shape: one table row per judged model.
    assert.equal(stored.comparisons.length, 6);
    assert.ok(stored.accuracy['one-off'].total.checked === 4);
  });
});
