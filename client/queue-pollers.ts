import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { CPU_TASK_QUEUE, GPU_TASK_QUEUE } from '../common/constants';

/** A task queue a run needs, and the worker command that polls it. */
export interface NeededQueue {
  queue: string;
  kind: 'cpu' | 'gpu';
}

const { TaskQueueType } = temporal.api.enums.v1;
/**
 * The server remembers pollers for minutes after a worker is gone. A live worker re-polls at least once a minute
 * (long polls end after about 60 s), so a poller not seen for two minutes has stopped.
 */
const POLLER_FRESH_MS = 2 * 60_000;

async function hasPoller(client: Client, queue: string, type: temporal.api.enums.v1.TaskQueueType): Promise<boolean> {
  const { pollers } = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: queue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: type,
  });
  const now = Date.now();
  return (pollers ?? []).some(
    (p) => !p.lastAccessTime || now - Number(p.lastAccessTime.seconds) * 1000 < POLLER_FRESH_MS,
  );
}

/**
 * The queues no worker polls. The CPU worker serves both workflow and activity tasks on its queue, the GPU worker
 * only activity tasks on its own.
 */
export async function unpolledQueues(client: Client, needed: NeededQueue[]): Promise<NeededQueue[]> {
  const checks = await Promise.all(
    needed.map(async (n) => {
      const types =
        n.kind === 'cpu'
          ? [TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY]
          : [TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY];
      const polled = await Promise.all(types.map((t) => hasPoller(client, n.queue, t)));
      return polled.every(Boolean) ? undefined : n;
    }),
  );
  return checks.filter((n): n is NeededQueue => n !== undefined);
}

export function noWorkerMessage(n: NeededQueue): string {
  const [variable, usual] =
    n.kind === 'cpu' ? ['PIFT_CPU_TASK_QUEUE', CPU_TASK_QUEUE] : ['PIFT_GPU_TASK_QUEUE', GPU_TASK_QUEUE];
  const override = n.queue === usual ? '' : ` and ${variable}=${n.queue}`;
  return `no worker is polling ${n.queue}: start one with npm run worker:${n.kind}${override}`;
}
