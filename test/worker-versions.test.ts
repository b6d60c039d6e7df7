import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { WorkflowFailedError } from '@temporalio/client';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { after, describe, it } from 'mocha';
import { makeCurrentVersion, pinnedDeployment, workerVersion } from '../workers/versioning';
import { phasedIftPipeline } from '../workflows';
import { repoRoot, sharedTemporal } from './helpers/temporal';
import { goSignal } from './workflows/pinned';

const quietLogger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } as never;

describe('pinned worker versions on the dev server', () => {
  const stops: Array<() => Promise<void>> = [];
  after(async () => {
    for (const stop of stops) await stop();
  });

  it('a run stays on the build it started on after a new build becomes current', async () => {
    const env = await sharedTemporal();
    const namespace = env.namespace ?? 'default';
    const taskQueue = `pinned-${randomUUID()}`;
    const deploymentName = `pift-test-${randomUUID().slice(0, 8)}`;
    const { code } = await bundleWorkflowCode({
      workflowsPath: require.resolve('./workflows/pinned'),
      logger: quietLogger,
    });
    const startBuild = async (buildId: string) => {
      const version = workerVersion({ PIFT_DEPLOYMENT_NAME: deploymentName, PIFT_BUILD_ID: buildId }, code);
      const worker = await Worker.create({
        connection: env.nativeConnection,
        namespace,
        taskQueue,
        workflowBundle: { code },
        activities: { buildId: async () => buildId },
        workerDeploymentOptions: pinnedDeployment(version),
      });
      const running = worker.run();
      stops.push(async () => (worker.shutdown(), await running));
      await makeCurrentVersion(env.connection, namespace, version);
    };
    const start = () => env.client.workflow.start('servedBy', { taskQueue, workflowId: `pinned-${randomUUID()}` });

    // Started before any build is current (as `npm run demo` may): it waits, then starts on the first current build.
    const early = await start();
    await startBuild('build-1');
    const old = await start();
    await startBuild('build-2');
    const fresh = await start();
    for (const run of [early, old, fresh]) await run.signal(goSignal);
    assert.deepEqual(await Promise.all([early, old, fresh].map((r) => r.result())), ['build-1', 'build-1', 'build-2']);
    const described = await old.describe();
    const info = described.raw.workflowExecutionInfo?.versioningInfo;
    assert.equal(info?.deploymentVersion?.buildId, 'build-1');
  });

  it('`npm run worker:cpu` makes its build current, and runs start pinned to it', async () => {
    const env = await sharedTemporal();
    const taskQueue = `cpu-${randomUUID()}`;
    const deploymentName = `pift-test-${randomUUID().slice(0, 8)}`;
    const child = spawn(process.execPath, ['-r', 'ts-node/register', join(repoRoot, 'workers', 'cpu.ts')], {
      cwd: repoRoot,
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: env.address,
        PIFT_CPU_TASK_QUEUE: taskQueue,
        PIFT_DEPLOYMENT_NAME: deploymentName,
        TS_NODE_TRANSPILE_ONLY: 'true',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    stops.push(async () => void child.kill('SIGINT'));
    const buildId = await new Promise<string>((resolve, reject) => {
      const lines: string[] = [];
      createInterface({ input: child.stderr! }).on('line', (line) => {
        lines.push(line);
        const current = / (\S+)\/(\S+) is the current version/.exec(line);
        if (current?.[1] === deploymentName) resolve(current[2]);
      });
      child.once('exit', (code) => reject(new Error(`cpu worker exited with ${code}:\n${lines.join('\n')}`)));
    });
    // Input that fails at its first step: enough to show which build ran the run.
    const run = await env.client.workflow.start(phasedIftPipeline, {
      taskQueue,
      workflowId: `pinned-${randomUUID()}`,
      args: [{} as never],
    });
    await assert.rejects(run.result(), WorkflowFailedError);
    const info = (await run.describe()).raw.workflowExecutionInfo?.versioningInfo;
    assert.deepEqual(
      [info?.deploymentVersion?.deploymentName, info?.deploymentVersion?.buildId],
      [deploymentName, buildId],
    );
  });
});
