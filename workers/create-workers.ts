import type { Duration } from '@temporalio/common';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createCpuActivities, createGpuActivities, type ActivityDeps } from '../activities';
import { modelCheckQueue } from '../common/constants';

/** Longest wait before an activity's latest heartbeat details reach the server, where clients read progress. */
export const HEARTBEAT_THROTTLE = '2 seconds';

interface CommonOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  deps: ActivityDeps;
}

/** The CPU worker hosts the workflow and the scoring, segmentation and judging activities. */
export function createCpuWorker(
  opts: CommonOptions & { workflowBundle?: WorkerOptions['workflowBundle'] },
): Promise<Worker> {
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    ...(opts.workflowBundle
      ? { workflowBundle: opts.workflowBundle }
      : { workflowsPath: require.resolve('../workflows') }),
    activities: createCpuActivities(opts.deps),
    // Scoring and judging progress reach `pift run` and `status` only in heartbeat details: send them within seconds
    // (the default waits up to a minute). Heartbeats cost no history.
    maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
  });
}

/**
 * The GPU worker runs training and generation only: one activity at a time, because one trainer owns the GPU.
 * Start one process per GPU with CUDA_VISIBLE_DEVICES set. On shutdown, running trainers get time to save.
 */
export function createGpuWorker(opts: CommonOptions): Promise<Worker> {
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    activities: createGpuActivities(opts.deps),
    maxConcurrentActivityTaskExecutions: 1,
    // Trainer progress reaches `pift status` only in heartbeat details, and a cancellation reaches the trainer only
    // in a heartbeat's reply: send them within seconds rather than the default of up to a minute (no history cost).
    maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
    // Time for a running trainer to save and upload a checkpoint when the worker is asked to stop.
    shutdownGraceTime: (process.env.PIFT_SHUTDOWN_GRACE ?? '5 minutes') as Duration,
  });
}

/** The model check of a GPU worker, on its side queue: a few seconds of CPU work each, so several at once. */
export function createModelCheckWorker(opts: CommonOptions): Promise<Worker> {
  const { checkModel } = createGpuActivities(opts.deps);
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: modelCheckQueue(opts.taskQueue),
    activities: { checkModel },
    maxConcurrentActivityTaskExecutions: 2,
  });
}
