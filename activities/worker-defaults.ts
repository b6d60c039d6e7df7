import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CPU_TASK_QUEUE, GPU_TASK_QUEUE } from '../common/constants';
import { WorkerMisconfiguredError } from '../common/failures';
import { DEFAULT_STORE_DIR, PAPER_JUDGE_MODEL } from '../common/settings/constants';

/**
 * Deployment defaults a worker's environment supplies for settings the workflow input leaves out. The one place
 * worker environment variables become defaults, so the worker that polls a queue and the run that sends work to it
 * read the same variable. A relative store directory is made absolute here: the run records it, and the GPU worker
 * may start in another directory.
 */
export function workerDefaults(env: NodeJS.ProcessEnv) {
  return {
    // Store URI of runs whose input names none.
    store: env.PIFT_STORE || pathToFileURL(resolve(DEFAULT_STORE_DIR)).href,
    cpuTaskQueue: env.PIFT_CPU_TASK_QUEUE || CPU_TASK_QUEUE,
    // Task queue the GPU worker polls; runs that name no queue are sent there.
    gpuTaskQueue: env.PIFT_GPU_TASK_QUEUE || GPU_TASK_QUEUE,
    scorerModel: env.PIFT_SCORER_MODEL || PAPER_JUDGE_MODEL,
    judgeModel: env.PIFT_JUDGE_MODEL || PAPER_JUDGE_MODEL,
  };
}

/** A worker count or cap from the environment (PIFT_GPU_SLOTS, PIFT_SCORE_SHARD_SLOTS…): `fallback` when unset. */
export function positiveIntegerSetting(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    throw new WorkerMisconfiguredError(`${name} must be a positive integer, got ${JSON.stringify(raw)}`, name);
  }
  return n;
}
