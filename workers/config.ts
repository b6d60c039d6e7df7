import { CPU_TASK_QUEUE, GPU_TASK_QUEUE } from '../common/constants';

/** Where a worker or client finds Temporal; every value can be overridden from the environment. */
export interface TemporalConfig {
  address: string;
  namespace: string;
  cpuTaskQueue: string;
  gpuTaskQueue: string;
  uiUrl: string;
}

export function temporalConfigFromEnv(env: NodeJS.ProcessEnv = process.env): TemporalConfig {
  return {
    address: env.TEMPORAL_ADDRESS ?? 'localhost:7233',
    namespace: env.TEMPORAL_NAMESPACE ?? 'default',
    cpuTaskQueue: env.PIFT_CPU_TASK_QUEUE ?? CPU_TASK_QUEUE,
    gpuTaskQueue: env.PIFT_GPU_TASK_QUEUE ?? GPU_TASK_QUEUE,
    uiUrl: (env.TEMPORAL_UI_URL ?? 'http://localhost:8233').replace(/\/$/, ''),
  };
}
