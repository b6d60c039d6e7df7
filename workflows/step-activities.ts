import { ActivityCancellationType, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { ActivityOptions, Duration, RetryPolicy } from '@temporalio/common';
// Only the activity types: activity code must never reach the workflow bundle.
import type { createCpuActivities } from '../activities/cpu';
import type { createGpuActivities } from '../activities/gpu';
import { shardQueue } from '../common/constants';
import { NON_RETRYABLE_FAILURES } from '../common/failures';
import type { ResolvedInput } from '../common/settings/schema';
import type { Producers } from './recompute-producer';

export type CpuActivities = ReturnType<typeof createCpuActivities>;
export type GpuActivities = ReturnType<typeof createGpuActivities>;

/** A retry policy of the pipeline's: the failure types that retrying cannot fix (bad input, ...) are never retried. */
export const retrying = (policy: RetryPolicy): RetryPolicy => ({
  ...policy,
  nonRetryableErrorTypes: NON_RETRYABLE_FAILURES,
});

const cpuOptions: ActivityOptions = {
  startToCloseTimeout: '1 day',
  heartbeatTimeout: '2 minutes',
  retry: retrying({ initialInterval: '2 seconds', maximumInterval: '1 minute', maximumAttempts: 10 }),
};

/** Retries of GPU work: a GPU worker that dies mid-activity costs one attempt of `training.maxAttempts`. */
export const gpuRetry = (cfg: ResolvedInput) =>
  retrying({ initialInterval: '5 seconds', maximumInterval: '5 minutes', maximumAttempts: cfg.training.maxAttempts });

const gpuOptions = (cfg: ResolvedInput): ActivityOptions => ({
  taskQueue: cfg.gpuTaskQueue,
  // A cancelled run waits until the trainer's process group is gone and its last checkpoint is stored.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  // Long trainings are bounded by the heartbeat (a dead worker is noticed within it), not by a wall clock.
  startToCloseTimeout: '30 days',
  heartbeatTimeout: cfg.training.heartbeatTimeout as Duration,
  retry: gpuRetry(cfg),
});

/**
 * A run's activities, each call named: `cpuAs('segment').segmentStages(...)`. Per call: the Web UI names each activity
 * by what it does ('stage-2', not four 'trainStage' bars), and the activity id carries the same name so `pift status`
 * can name a pending activity without reading the history.
 */
export function stepActivities(cfg: ResolvedInput) {
  const named = (name: string) => ({ summary: name, activityId: name });
  const gpu = gpuOptions(cfg);
  return {
    cpuAs: (name: string) => proxyActivities<CpuActivities>({ ...cpuOptions, ...named(name) }),
    gpuAs: (name: string) => proxyActivities<GpuActivities>({ ...gpu, ...named(name) }),
    /** The CPU workers' shard queue, where each worker takes only a few shards at a time. */
    shardsAs: (name: string) =>
      proxyActivities<CpuActivities>({
        ...cpuOptions,
        taskQueue: shardQueue(workflowInfo().taskQueue),
        ...named(name),
      }),
    /** The run's trainings so far, each able to run again when its output is found damaged (recompute-producer.ts). */
    producers: new Map() as Producers,
  };
}

export type StepActivities = ReturnType<typeof stepActivities>;
