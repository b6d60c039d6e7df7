import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

/** A task queue a run needs, and the kind of worker (`npm run worker:KIND`) that polls it. */
export interface NeededQueue {
  queue: string;
  kind: 'cpu' | 'gpu';
}

const { TaskQueueType, TaskQueueKind } = temporal.api.enums.v1;
/** The task types each worker polls: the CPU worker serves workflow and activity tasks, the GPU worker activities. */
const POLLED = {
  cpu: [TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY],
  gpu: [TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY],
};
/**
 * The server remembers pollers for minutes after a worker is gone. A live worker re-polls at least once a minute
 * (long polls end after about 60 s), so a poller not seen for two minutes has stopped.
 */
const POLLER_FRESH_MS = 2 * 60_000;

/** Whether every task type of the queue has a fresh poller. */
async function isPolled(client: Client, { queue, kind }: NeededQueue): Promise<boolean> {
  const described = await Promise.all(
    POLLED[kind].map((taskQueueType) =>
      client.workflowService.describeTaskQueue({
        namespace: client.options.namespace,
        taskQueue: { name: queue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        taskQueueType,
      }),
    ),
  );
  const now = Date.now();
  const fresh = (p: temporal.api.taskqueue.v1.IPollerInfo) =>
    !p.lastAccessTime || now - Number(p.lastAccessTime.seconds) * 1000 < POLLER_FRESH_MS;
  return described.every(({ pollers }) => (pollers ?? []).some(fresh));
}

/** The queues no worker polls. */
export async function unpolledQueues(client: Client, needed: NeededQueue[]): Promise<NeededQueue[]> {
  const polled = await Promise.all(needed.map((n) => isPolled(client, n)));
  return needed.filter((_, i) => !polled[i]);
}
