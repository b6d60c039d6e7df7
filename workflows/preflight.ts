import { ActivityFailure, ApplicationFailure, proxyActivities, TimeoutFailure } from '@temporalio/workflow';
import { TimeoutType, type Duration } from '@temporalio/common';
import { modelCheckQueue } from '../common/constants';
import { FailureType } from '../common/failures';
import { servesModels } from '../common/settings/derive';
import type { ResolvedInput } from '../common/settings/schema';
import { gpuRetry, retrying, type CpuActivities, type GpuActivities } from './step-activities';

const { preflight } = proxyActivities<CpuActivities>({
  summary: 'preflight',
  // A store outage met here is waited out (heartbeating) like anywhere else, so no short wall-clock limit.
  startToCloseTimeout: '1 day',
  heartbeatTimeout: '2 minutes',
  retry: retrying({ initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 5 }),
});

const { gpuWorkerPolls } = proxyActivities<CpuActivities>({
  summary: 'gpu-workers',
  startToCloseTimeout: '1 minute',
  retry: retrying({ maximumAttempts: 5 }),
});

/**
 * Everything that can fail before the first paid request: the input's URIs, store, dataset and benchmarks (CPU
 * worker), then the base model and its tokenizer on the GPU queue, which also proves a GPU worker polls it.
 */
export async function checkBeforeScoring(cfg: ResolvedInput): Promise<void> {
  const { gpuCheckWait } = await preflight(cfg);
  // Nothing is trained: no model to check, no GPU worker needed.
  if (cfg.training.mode === 'export-only') return;
  const checkQueue = modelCheckQueue(cfg.gpuTaskQueue);
  const { checkModel } = proxyActivities<GpuActivities>({
    taskQueue: checkQueue,
    summary: 'check-model',
    // Bounded per attempt: a check nobody took within the wait asks whether any GPU worker polls at all (below).
    scheduleToStartTimeout: gpuCheckWait as Duration,
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: '1 minute',
    // As sturdy as training: a GPU worker that dies during the check costs an attempt of the same budget.
    retry: gpuRetry(cfg),
  });
  const input = {
    runId: cfg.runId,
    model: cfg.training.baseModel,
    maxLength: cfg.training.maxLength,
    field: 'input.training.baseModel',
    ...(servesModels(cfg) && { serving: true }),
  };
  // Busy GPU workers (other runs' checks queued first) are waited for; only a queue nobody polls fails the run.
  while (!(await checkModel(input).then(() => true, notTakenInTime))) {
    if (await gpuWorkerPolls(checkQueue)) continue;
    throw ApplicationFailure.create({
      type: FailureType.WorkerMisconfigured,
      nonRetryable: true,
      message:
        `no GPU worker took the model check within ${gpuCheckWait}: no GPU worker of task queue ` +
        `"${cfg.gpuTaskQueue}" is running (its model checks go to "${checkQueue}"). Start one with ` +
        `PIFT_GPU_TASK_QUEUE=${cfg.gpuTaskQueue} npm run worker:gpu, then resume the run`,
      details: [{ setting: 'PIFT_GPU_TASK_QUEUE', tried: `model check on task queue ${cfg.gpuTaskQueue}` }],
    });
  }
}

/** False for a check no GPU worker took within its wait; any other failure goes on. */
function notTakenInTime(err: unknown): false {
  const timeout = err instanceof ActivityFailure && err.cause instanceof TimeoutFailure ? err.cause : undefined;
  if (timeout?.timeoutType === TimeoutType.SCHEDULE_TO_START) return false;
  throw err;
}
