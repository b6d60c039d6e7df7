import assert from 'node:assert/strict';
import { heartbeat, Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'mocha';
import { workflowBundle } from './helpers/workflow-bundle';
import { depsFromEnv, type TrainerProgress, type TrainInput } from '../activities';
import { formatStatus, listRuns, runProgress, runStatus, startRun, type StartedRun } from '../client';
import { createCpuWorker, createModelCheckWorker } from '../workers/create-workers';
import { repoRoot, sharedTemporal } from './helpers/temporal';

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

/**
 * The operator's view of a run on a real dev server: a run waiting on a GPU queue nobody polls says so, and the
 * trainer's step and loss reach `status` through the activity's heartbeat details, not through workflow history.
 */
describe('pift status on a live run', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let cpuWorker: Worker;
  let cpuRunning: Promise<void>;
  let checkWorker: Worker;
  let checkRunning: Promise<void>;
  let run: StartedRun;
  const cpuQueue = `cpu-${randomUUID()}`;
  const gpuQueue = `gpu-${randomUUID()}`;
  const runId = `status-${randomUUID().slice(0, 8)}`;
  // Under the working directory: a worker reads and writes file:// stores only below the roots it allows.
  const storeDir = join(repoRoot, '.pift', 'test-store', runId);

  before(async () => {
    env = await sharedTemporal();
    cpuWorker = await createCpuWorker({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue: cpuQueue,
      deps: depsFromEnv({ ...process.env, PIFT_WORKDIR: join(storeDir, 'work') }),
      workflowBundle: await workflowBundle(),
    });
    cpuRunning = cpuWorker.run();
    // The GPU process's model-check side queue is served, its training queue is not: the run passes its checks
    // and then waits for a GPU worker.
    checkWorker = await createModelCheckWorker({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue: gpuQueue,
      deps: depsFromEnv({ ...process.env, PIFT_WORKDIR: join(storeDir, 'work') }),
    });
    checkRunning = checkWorker.run();
    run = await startRun(
      env.client,
      {
        dataset: pathToFileURL(join(repoRoot, 'data', 'demo', 'train.jsonl')).href,
        runId,
        store: pathToFileURL(join(storeDir, 'store')).href,
        gpuTaskQueue: gpuQueue,
        scorer: { kind: 'offline' },
        baseline: { mode: 'skip' },
        training: { heartbeatTimeout: '4 seconds' },
      },
      { taskQueue: cpuQueue },
    );
  });

  after(async () => {
    await run?.handle.cancel().catch(() => undefined);
    cpuWorker?.shutdown();
    checkWorker?.shutdown();
    await cpuRunning?.catch(() => undefined);
    await checkRunning?.catch(() => undefined);
    rmSync(storeDir, { recursive: true, force: true });
  });

  it('says that no worker polls the GPU queue the run waits on', async () => {
    const training = await until('stage 1 to be scheduled', async () => {
      const p = await runProgress(env.client, runId);
      return p.activities.find((a) => a.type === 'trainStage');
    });
    assert.equal(training.name, 'stage-1');
    assert.equal(training.state, 'scheduled');
    assert.equal(training.taskQueue, gpuQueue);

    const status = await runStatus(env.client, runId, { uiLink: 'http://ui', gpuTaskQueue: 'pift-gpu' });
    assert.deepEqual(status.unpolled, [{ queue: gpuQueue, kind: 'gpu' }], 'the CPU worker polls its queue');
    assert.match(
      formatStatus(status),
      new RegExp(`no worker is polling ${gpuQueue}: start one with npm run worker:gpu`),
    );

    // The same from the command line, connected through the Temporal environment variables.
    const { stdout } = await execFileP(
      process.execPath,
      ['-r', 'ts-node/register', join(repoRoot, 'client', 'cli.ts'), 'status', runId],
      {
        cwd: repoRoot,
        env: {
          ...process.env,
          TEMPORAL_ADDRESS: env.address,
          TEMPORAL_NAMESPACE: env.namespace ?? 'default',
          TS_NODE_TRANSPILE_ONLY: 'true',
        },
      },
    );
    assert.match(stdout, new RegExp(`^run ${runId}: RUNNING$`, 'm'));
    assert.match(stdout, /running: stage-1 \(trainStage on gpu-[^,]+, scheduled\), attempt 1/);
    assert.match(stdout, new RegExp(`warning: no worker is polling ${gpuQueue}: start one with npm run worker:gpu`));
    assert.doesNotMatch(stdout, new RegExp(`no worker is polling ${cpuQueue}`));
  });

  it('lists the run among the recent runs', async () => {
    const runs = await until('the run to be visible', async () =>
      (await listRuns(env.client, { limit: 100 })).find((r) => r.runId === runId),
    );
    assert.equal(runs.status, 'RUNNING');
    assert.equal(runs.step, 'stage-1');
  });

  it("reads the trainer's step and loss from the activity's heartbeat details", async () => {
    // A GPU worker whose training reports fixed progress: what matters here is the way back to the client.
    const reported: TrainerProgress = { name: 'stage-1', step: 7, totalSteps: 30, loss: 2.5, resumedFromStep: 0 };
    const gpuWorker = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue: gpuQueue,
      activities: {
        async trainStage(input: TrainInput) {
          assert.equal(input.name, 'stage-1');
          for (;;) {
            heartbeat(reported);
            await Context.current().sleep(500); // throws once the run is cancelled
          }
        },
      },
    });
    await gpuWorker.runUntil(async () => {
      const progress = await until('the heartbeat to reach the server', async () => {
        const p = await runProgress(env.client, runId);
        return p.training['stage-1'] ? p : undefined;
      });
      assert.deepEqual(progress.training['stage-1'], reported);
      assert.equal(progress.step, 'stage-1');
      const status = await runStatus(env.client, runId, { uiLink: 'http://ui', gpuTaskQueue: 'pift-gpu' });
      assert.deepEqual(status.unpolled, [], 'the GPU queue has a poller now');
      assert.match(
        formatStatus(status),
        /running: stage-1 \(trainStage on gpu-[^,]+, started\), attempt 1\/\d+ \| trainer step 7\/30 loss 2\.500/,
      );

      await run.handle.cancel();
      const err = await run.handle.result().then(
        () => undefined,
        (e) => e,
      );
      assert.ok(err instanceof WorkflowFailedError, `expected a cancelled run, got ${err}`);
    });
    // Heartbeats never became history: no signal or other event per progress report.
    const history = await run.handle.fetchHistory();
    assert.ok(!history.events?.some((e) => e.workflowExecutionSignaledEventAttributes));
  });
});
