import { workerDefaults } from '../activities/validate/worker-defaults';

/** Where a worker or client finds Temporal; every value can be overridden from the environment. */
export interface TemporalConfig {
  address: string;
  namespace: string;
  cpuTaskQueue: string;
  gpuTaskQueue: string;
  uiUrl: string;
}

export function temporalConfigFromEnv(env: NodeJS.ProcessEnv = process.env): TemporalConfig {
  // The same resolution the run uses to pick its GPU queue, so a worker moved by PIFT_GPU_TASK_QUEUE still gets work.
  const { cpuTaskQueue, gpuTaskQueue } = workerDefaults(env);
  return {
    address: env.TEMPORAL_ADDRESS ?? 'localhost:7233',
    namespace: env.TEMPORAL_NAMESPACE ?? 'default',
    cpuTaskQueue,
    gpuTaskQueue,
    uiUrl: (env.TEMPORAL_UI_URL ?? 'http://localhost:8233').replace(/\/$/, ''),
  };
}
