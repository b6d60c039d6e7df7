import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'mocha';
import { Value } from '@sinclair/typebox/value';
import type { WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { modelCheckQueue } from '../common/constants';
import { resolveTrainingDefaults } from '../common/settings/derive';
import { TrainingSchema, type TrainingOptions } from '../common/settings/schema';
import { depsFromEnv } from '../activities/deps';
import { FailureType, failureTypeOf } from '../common/failures';
import { openStore } from '../store';
import { phasedIftPipeline } from '../workflows';
import { createCpuWorker } from '../workers/create-workers';
import { repoRoot, sharedTemporal } from './helpers/temporal';
import { workflowBundle } from './helpers/workflow-bundle';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether the run has scheduled a training activity: it is past its model check and scoring. */
async function startedTraining(run: WorkflowHandle): Promise<boolean> {
  const events = (await run.fetchHistory()).events ?? [];
  return events.some((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'trainStage');
}

describe('the model check before scoring', function () {
  this.timeout(180_000);

  it('fails within the configured wait, naming the queue, before anything is scored', async () => {
    const temporal = await sharedTemporal();
    const dir = mkdtempSync(join(tmpdir(), 'pift-no-gpu-'));
    const storeUri = pathToFileURL(join(dir, 'store')).href;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PIFT_WORKDIR: join(dir, 'work'),
      PIFT_GPU_CHECK_WAIT: '3 seconds',
      PIFT_FILE_ROOTS: [dir, join(repoRoot, 'data')].join(delimiter),
    };
    delete env.PIFT_OPENAI_BASE_URL;
    const taskQueue = `cpu-${randomUUID()}`;
    const gpuQueue = `gpu-nobody-${randomUUID()}`;
    const worker = await createCpuWorker({
      connection: temporal.nativeConnection,
      namespace: temporal.namespace ?? 'default',
      taskQueue,
      deps: { ...depsFromEnv(env), env },
      workflowBundle: await workflowBundle(),
    });
    const runId = `no-gpu-${randomUUID()}`;
    const started = Date.now();
    const err = await worker
      .runUntil(
        temporal.client.workflow.execute(phasedIftPipeline, {
          taskQueue,
          workflowId: runId,
          args: [
            {
              runId,
              store: storeUri,
              gpuTaskQueue: gpuQueue,
              dataset: pathToFileURL(join(repoRoot, 'data', 'demo', 'train.jsonl')).href,
            },
          ],
        }),
      )
      .then(
        () => assert.fail('the run completed without a GPU worker'),
        (e: unknown) => e,
      );
    const elapsed = Date.now() - started;
    assert.ok(err instanceof WorkflowFailedError, String(err));
    assert.equal(failureTypeOf(err), FailureType.WorkerMisconfigured);
    const failure = err.cause as ApplicationFailure;
    assert.match(failure.message, new RegExp(`no GPU worker of task queue "${gpuQueue}" is running`));
    assert.match(failure.message, /PIFT_GPU_TASK_QUEUE/);
    assert.ok(elapsed < 30_000, `took ${elapsed} ms`);
    // Nothing was scored: the run's prefix holds its claim alone, not even the store probe.
    assert.deepEqual(await openStore(storeUri).list(runId), [`${runId}/owner.json`]);
  });
  it('waits for a busy GPU worker to take the check, with the attempt budget of training', async () => {
    const temporal = await sharedTemporal();
    const dir = mkdtempSync(join(tmpdir(), 'pift-busy-gpu-'));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PIFT_WORKDIR: join(dir, 'work'),
      PIFT_GPU_CHECK_WAIT: '2 seconds',
      PIFT_FILE_ROOTS: dir,
    };
    delete env.PIFT_OPENAI_BASE_URL;
    const rows = readFileSync(join(repoRoot, 'data', 'demo', 'train.jsonl'), 'utf8')
      .split('\n')
      .slice(0, 12);
    writeFileSync(join(dir, 'rows.jsonl'), rows.join('\n') + '\n');
    const taskQueue = `cpu-${randomUUID()}`;
    const gpuQueue = `gpu-busy-${randomUUID()}`;
    const connection = temporal.nativeConnection;
    const cpu = await createCpuWorker({
      connection,
      namespace: temporal.namespace ?? 'default',
      taskQueue,
      deps: { ...depsFromEnv(env), env },
      workflowBundle: await workflowBundle(),
    });
    // One GPU worker, busy: each check takes longer than PIFT_GPU_CHECK_WAIT, so the second waits past it.
    const checked: string[] = [];
    const checks = await Worker.create({
      connection,
      taskQueue: modelCheckQueue(gpuQueue),
      maxConcurrentActivityTaskExecutions: 1,
      activities: {
        checkModel: async ({ runId }: { runId: string }) => {
          await sleep(5_000);
          checked.push(runId);
          return {};
        },
      },
    });
    const start = (runId: string) =>
      temporal.client.workflow.start(phasedIftPipeline, {
        taskQueue,
        workflowId: runId,
        args: [
          {
            runId,
            store: pathToFileURL(join(dir, 'store')).href,
            gpuTaskQueue: gpuQueue,
            dataset: pathToFileURL(join(dir, 'rows.jsonl')).href,
            scorer: { kind: 'offline' },
            stages: { count: 1, thresholds: [] },
          },
        ],
      });
    await cpu.runUntil(
      checks.runUntil(async () => {
        const runs = await Promise.all([start(`busy-a-${randomUUID()}`), start(`busy-b-${randomUUID()}`)]);
        try {
          while (checked.length < 2) await sleep(200);
          // Both went on to train (on a GPU queue nobody serves here): neither failed while it waited.
          for (const run of runs) {
            for (let i = 0; i < 100 && !(await startedTraining(run)); i++) await sleep(200);
            assert.equal((await run.describe()).status.name, 'RUNNING');
            assert.ok(await startedTraining(run), 'the run went on past its model check');
          }
          const scheduled = (await runs[0].fetchHistory()).events?.find(
            (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'checkModel',
          );
          const training = resolveTrainingDefaults(Value.Default(TrainingSchema, {}) as TrainingOptions);
          assert.equal(
            scheduled?.activityTaskScheduledEventAttributes?.retryPolicy?.maximumAttempts,
            training.maxAttempts,
          );
        } finally {
          await Promise.all(runs.map((r) => r.terminate('test over')));
        }
      }),
    );
  });
});
