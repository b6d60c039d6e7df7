import { Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection } from '@temporalio/worker';
import { depsFromEnv } from '../activities';
import { temporalConfigFromEnv } from './config';
import { createCpuWorkers, createGpuWorker, createModelCheckWorker } from './create-workers';
import { gpuSlots } from './gpu-slots';
import { ensureSearchAttributes } from './search-attributes';
import { makeCurrentVersion, workerVersion } from './versioning';

/** Entry point of both worker processes; configuration comes from the environment (docs/worker-environment.md). */
export async function runWorker(kind: 'cpu' | 'gpu'): Promise<void> {
  const cfg = temporalConfigFromEnv();
  // Only the CPU worker runs workflows, which upsert the PiftStep search attribute.
  // A key that may not change the namespace (Temporal Cloud) must not keep the worker from starting.
  if (kind === 'cpu')
    await ensureSearchAttributes(cfg.connection, cfg.namespace).catch((err) =>
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
            slots.map(({ devices }) =>
              createGpuWorker(
                devices === undefined
                  ? options
                  : {
                      ...options,
                      deps: { ...options.deps, env: { ...options.deps.env, CUDA_VISIBLE_DEVICES: devices } },
                    },
              ),
            ),
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
      const client = await Connection.connect(cfg.connection);
      await makeCurrentVersion(client, cfg.namespace, version).finally(() => client.close());
      console.error(`pift ${kind} worker: ${version.deploymentName}/${version.buildId} is the current version`);
    }
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
