import assert from 'node:assert/strict';
import { before, describe, it } from 'mocha';
import { runProgress, startRun } from '../client';
import type { TrainResult } from '../activities/types';
import type { PipelineInput } from '../common/settings/schema';
import { replayAndRecord } from './helpers/histories';
import { balancedDemo, startHarness, type Harness } from './helpers/pipeline-harness';
import { stubTrainerEnv } from './helpers/stub-trainer';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('training survives the loss of its GPU worker or of its store', function () {
  this.timeout(15 * 60_000);
  let h: Harness;

  before(async () => {
    h = await startHarness();
  });

  /**
   * A run of 96 demo rows on the offline scorer, with frequent checkpoints and a short heartbeat timeout. `epochs`
   * sets how long each stage trains: long enough for what the test does in the middle of it, and no longer, since
   * every step and checkpoint costs time on 2 CPU cores.
   */
  async function startTrainingRun(runId: string, epochs: number, extra: Partial<PipelineInput> = {}, on = h) {
    const rows = balancedDemo(8);
    const dataset = await on.upload(`${runId}/train.jsonl`, rows.map((r) => JSON.stringify(r)).join('\n'));
    return startRun(
      on.temporal.client,
      {
        dataset,
        runId,
        store: on.storeUri,
        gpuTaskQueue: on.gpuQueue,
        scorer: { kind: 'offline' },
        baseline: { mode: 'skip' },
        // A dead worker is noticed when its heartbeats stop; keep that short for the test.
        training: { epochs, saveSteps: 3, heartbeatTimeout: '8 seconds' },
        ...extra,
      },
      { taskQueue: on.cpuQueue },
    );
  }

  it('finishes the run without retraining stage 1, continuing stage 2 from its last checkpoint', async () => {
    const runId = 'resume-run';
    const firstWorker = await h.startGpuWorker();
    // 32 rows a stage, batch 8: 20 steps, checkpoints every 3. The kill comes right after stage 2's first checkpoint
    // (step 3), which leaves stage 2 most of its steps still to train when the worker dies.
    const run = await startTrainingRun(runId, 5);

    // Wait for a committed stage-2 checkpoint, then kill the worker as hard as a machine failure would.
    const checkpointPrefix = `${runId}/train/stage-2/checkpoints/`;
    let committed: number[] = [];
    for (let i = 0; i < 1200 && committed.length === 0; i++) {
      committed = (await h.store.list(checkpointPrefix))
        .flatMap((k) => /step-(\d+)\/manifest\.json$/.exec(k)?.[1] ?? [])
        .map(Number);
      if (committed.length === 0) await sleep(100);
    }
    assert.ok(committed.length > 0, 'stage 2 committed a checkpoint');
    // The pid reaches the server with a heartbeat, which the SDK may hold back for a few seconds.
    let trainerPid: number | undefined;
    for (let i = 0; i < 300 && !trainerPid; i++) {
      trainerPid = (await runProgress(h.temporal.client, runId)).training['stage-2']?.pid;
      if (!trainerPid) await sleep(100);
    }
    assert.ok(trainerPid && alive(trainerPid), 'the stage-2 trainer is running');
    const stage1Manifest = await h.store.getText(`${runId}/train/stage-1/manifest.json`);
    firstWorker.kill('SIGKILL');

    // The orphaned trainer notices its parent is gone and exits, freeing the GPU.
    for (let i = 0; i < 100 && alive(trainerPid); i++) await sleep(100);
    assert.ok(!alive(trainerPid), 'the trainer exited with its worker');

    await h.startGpuWorker();
    const result = await run.handle.result();
    const byName = new Map<string, TrainResult>(result.training.map((t) => [t.name, t]));
    const stage1 = byName.get('stage-1')!;
    const stage2 = byName.get('stage-2')!;
    assert.equal(stage1.attempts, 1, 'stage 1 ran once');
    assert.equal(
      await h.store.getText(`${runId}/train/stage-1/manifest.json`),
      stage1Manifest,
      'stage 1 was not retrained',
    );
    assert.ok(stage2.attempts >= 2, 'stage 2 was retried on the new worker');
    assert.ok(
      stage2.resumedFromStep >= Math.max(...committed),
      `stage 2 resumed from step ${stage2.resumedFromStep}, not from 0`,
    );
    assert.equal(stage2.steps, 20);
    assert.ok(byName.get('stage-3'), 'the run went on to stage 3');
    await replayAndRecord(h.temporal.client, run.handle.workflowId, 'resumed-after-worker-loss');
  });

  it('waits out a store outage in the middle of training, on the same attempt', async () => {
    const runId = 'outage-run';
    // What is under test is the activity's uploads and heartbeats, not what the trainer learns: the stub trainer
    // trains, a step every half second, writing its checkpoints as the real one does.
    const stub = await startHarness({ workerEnv: { ...stubTrainerEnv(), PIFT_STUB_STEP_SECONDS: '0.5' } });
    await stub.startGpuWorker();
    // 96 rows in one stage, batch 8: 48 steps, so training goes on through the outage and after it.
    const run = await startTrainingRun(runId, 4, { stages: { count: 1, thresholds: [] } }, stub);
    // The first committed checkpoint shows training is under way; then the store disappears for longer than the
    // S3 client's own retries last (under a second against a refused connection) and for twice the heartbeat
    // timeout, so only the activity's heartbeats while it waits keep the attempt alive, while the trainer goes on
    // writing checkpoints that must wait to be uploaded.
    const prefix = `${runId}/train/stage-1/checkpoints/`;
    for (let i = 0; i < 1200; i++) {
      if ((await stub.store.list(prefix)).some((k) => k.endsWith('/manifest.json'))) break;
      await sleep(100);
    }
    const restart = await stub.s3.goDown();
    await sleep(16_000);
    await restart();

    const result = await run.handle.result();
    const stage = result.training.find((t) => t.name === 'stage-1')!;
    assert.equal(stage.attempts, 1, 'the outage cost no attempt');
    assert.equal(stage.resumedFromStep, 0, 'the stage never restarted');
    assert.equal(stage.steps, 48);
  });
});
