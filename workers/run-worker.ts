import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, NativeConnection } from '@temporalio/worker';
import { depsFromEnv } from '../activities';
import { PIFT_STEP } from '../common/constants';
import { temporalConfigFromEnv } from './config';
import { createCpuWorkers, createGpuWorker, createModelCheckWorker } from './create-workers';
import { gpuSlots } from './gpu-slots';
import { makeCurrentVersion, workerVersion } from './versioning';

/**
 * Registers the PiftStep search attribute when the namespace lacks it: upserting an unknown attribute would fail
 * every workflow task. The dev server started by our scripts already has it; other clusters get it here.
 */
async function ensureSearchAttributes(client: Connection, namespace: string): Promise<void> {
  const { customAttributes } = await client.operatorService.listSearchAttributes({ namespace });
  if (customAttributes && PIFT_STEP.name in customAttributes) return;
  await client.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: { [PIFT_STEP.name]: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD },
  });
}

/** Entry point of both worker processes; configuration comes from the environment (docs/worker-environment.md). */
async function runWorker(kind: 'cpu' | 'gpu'): Promise<void> {
  const cfg = temporalConfigFromEnv();
  const client = await Connection.connect(cfg.connection);
  // Only the CPU worker runs workflows, which upsert the PiftStep search attribute.
  // A key that may not change the namespace (Temporal Cloud) must not keep the worker from starting.
  if (kind === 'cpu')
    await ensureSearchAttributes(client, cfg.namespace).catch((err) =>
      console.error(`warning: could not check the PiftStep search attribute (add it to ${cfg.namespace}): ${err}`),
    );
  const connection = await NativeConnection.connect(cfg.connection);
  try {
    const taskQueue = kind === 'cpu' ? cfg.cpuTaskQueue : cfg.gpuTaskQueue;
    const options = { connection, namespace: cfg.namespace, taskQueue, deps: depsFromEnv() };
    const slots = kind === 'gpu' ? gpuSlots(process.env) : [];
    // The CPU worker's runs are pinned to its build: bundled here, so the build id can name the workflow code.
    const workflowBundle =
      kind === 'cpu' ? await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows') }) : undefined;
    const version = workflowBundle && workerVersion(process.env, workflowBundle.code);
    const workers = workflowBundle
      ? await createCpuWorkers({ ...options, workflowBundle, version })
      : [
          // One worker per slot, each with its own GPUs and one activity at a time.
          ...(await Promise.all(
            slots.map(({ devices }) => {
              const env =
                devices === undefined ? options.deps.env : { ...options.deps.env, CUDA_VISIBLE_DEVICES: devices };
              return createGpuWorker({ ...options, deps: { ...options.deps, env } });
            }),
          )),
          await createModelCheckWorker(options),
        ];
    const slotNote =
      slots.length > 1 ? ` (${slots.length} slots: GPUs ${slots.map((s) => s.devices).join(' | ')})` : '';
    const versionNote = version ? ` as ${version.deploymentName}/${version.buildId}` : '';
    console.error(`pift ${kind} worker polling ${taskQueue} on ${cfg.address}${slotNote}${versionNote}`);
    // Both stop together on SIGINT/SIGTERM (the SDK's runtime shuts down every worker of the process).
    const running = Promise.all(workers.map((w) => w.run()));
    if (version && process.env.PIFT_SET_CURRENT_VERSION?.trim() !== '0') {
      await makeCurrentVersion(client, cfg.namespace, version);
      console.error(`pift ${kind} worker: ${version.deploymentName}/${version.buildId} is the current version`);
    }
    await client.close();
    await running;
  } finally {
    await connection.close();
  }
}

export function main(kind: 'cpu' | 'gpu'): void {
  runWorker(kind).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
