import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { FailureType, failureTypeOf } from '../common/failures';
import { openStore } from '../store';
import { phasedIftPipeline } from '../workflows';
import { createCpuWorker } from '../workers/create-workers';
import { repoRoot, sharedTemporal } from './helpers/temporal';
import { workflowBundle } from './helpers/workflow-bundle';

describe('a run whose GPU queue has no worker', function () {
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
    // Nothing was scored: the run's prefix holds nothing, not even the store probe.
    assert.deepEqual(await openStore(storeUri).list(runId), []);
  });
});
