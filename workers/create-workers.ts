import type { Duration, WorkerDeploymentVersion } from '@temporalio/common';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createCpuActivities, createGpuActivities, type ActivityDeps } from '../activities';
import { modelCheckQueue, shardQueue } from '../common/constants';
import { positiveIntegerSetting } from '../activities/worker-defaults';
import { pinnedDeployment } from './versioning';

/** Longest wait before an activity's latest heartbeat details reach the server, where clients read progress. */
const HEARTBEAT_THROTTLE = '2 seconds';

interface CommonOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  deps: ActivityDeps;
}

interface CpuOptions extends CommonOptions {
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** The Worker Deployment Version its runs are pinned to (workers/versioning.ts); unversioned without. */
  version?: WorkerDeploymentVersion;
}

/** Where a worker polls: the process's connection and namespace, and `taskQueue`. */
const polling = (opts: CommonOptions, taskQueue = opts.taskQueue) => ({
  connection: opts.connection,
  namespace: opts.namespace,
  taskQueue,
});

/** The CPU worker hosts the workflow and the scoring, segmentation and judging activities. */
export function createCpuWorker(opts: CpuOptions): Promise<Worker> {
  return Worker.create({
    ...polling(opts),
    ...(opts.workflowBundle
      ? { workflowBundle: opts.workflowBundle }
      : { workflowsPath: require.resolve('../workflows') }),
    activities: createCpuActivities(opts.deps),
    ...(opts.version && { workerDeploymentOptions: pinnedDeployment(opts.version) }),
    // Scoring and judging progress reach `pift run` and `status` only in heartbeat details: send them within seconds
    // (the default waits up to a minute). Heartbeats cost no history.
    maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
  });
}

/** Shards one CPU worker process scores at once, unless PIFT_SCORE_SHARD_SLOTS says otherwise. */
export const DEFAULT_SCORE_SHARD_SLOTS = 2;

/** PIFT_SCORE_SHARD_SLOTS: how many shards of `scorer.shardRows` one CPU worker process scores at once. */
export const scoreShardSlots = (env: NodeJS.ProcessEnv): number =>
  positiveIntegerSetting(env, 'PIFT_SCORE_SHARD_SLOTS', DEFAULT_SCORE_SHARD_SLOTS);

/**
 * Every worker of a CPU worker process: the workflow and CPU activities, and beside them the shard worker on its side
 * queue (shardQueue): scoreShard only, a few at a time. Each shard holds a pool of requests and its score lines in
 * flight; without a bound one worker would take every shard of a run at once (memory grows with the shards) while
 * other CPU workers stood idle.
 */
export async function createCpuWorkers(opts: CpuOptions): Promise<Worker[]> {
  const cpu = await createCpuWorker(opts);
  const { scoreShard } = createCpuActivities(opts.deps);
  const shards = await Worker.create({
    ...polling(opts, shardQueue(opts.taskQueue)),
    activities: { scoreShard },
    maxConcurrentActivityTaskExecutions: scoreShardSlots(opts.deps.env),
    maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
  });
  return [cpu, shards];
}

/**
 * The GPU worker runs training and generation only: one activity at a time, because one trainer owns the GPU.
 * Start one process per GPU with CUDA_VISIBLE_DEVICES set. On shutdown, running trainers get time to save.
 */
export function createGpuWorker(opts: CommonOptions): Promise<Worker> {
  return Worker.create({
    ...polling(opts),
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
    ...polling(opts, modelCheckQueue(opts.taskQueue)),
    activities: { checkModel },
    maxConcurrentActivityTaskExecutions: 2,
  });
}
