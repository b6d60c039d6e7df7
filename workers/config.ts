import { loadClientConnectConfig } from '@temporalio/envconfig';
import { workerDefaults } from '../activities/worker-defaults';

/**
 * Where a worker or client finds Temporal, and which queues the pipeline uses. The connection (address, TLS: mTLS
 * client certificate, server CA; API key and gRPC metadata) is what @temporalio/envconfig loads: the profile
 * `TEMPORAL_PROFILE` (default "default") of the Temporal config file (`TEMPORAL_CONFIG_FILE`, default
 * ~/.config/temporalio/temporal.toml), overridden by TEMPORAL_ADDRESS, TEMPORAL_API_KEY, TEMPORAL_TLS_*. The same
 * settings the `temporal` CLI reads, so one profile serves both.
 */
export function temporalConfigFromEnv(env: NodeJS.ProcessEnv = process.env) {
  const vars = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
  const { connectionOptions, namespace } = loadClientConnectConfig({ overrideEnvVars: vars });
  const address = connectionOptions.address ?? 'localhost:7233';
  // The same resolution the run uses to pick its GPU queue, so a worker moved by PIFT_GPU_TASK_QUEUE still gets work.
  const { cpuTaskQueue, gpuTaskQueue } = workerDefaults(env);
  return {
    connection: { ...connectionOptions, address },
    address,
    namespace: namespace ?? 'default',
    cpuTaskQueue,
    gpuTaskQueue,
    uiUrl: (env.TEMPORAL_UI_URL ?? 'http://localhost:8233').replace(/\/$/, ''),
  };
}
