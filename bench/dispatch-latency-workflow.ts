import { proxyActivities, sleep } from '@temporalio/workflow';

const { hold, mark } = proxyActivities<{ hold(ms: number): Promise<number>; mark(): Promise<number> }>({
  taskQueue: 'dispatch-latency-activities',
  startToCloseTimeout: '10 minutes',
  retry: { maximumAttempts: 1 },
});

/**
 * A long activity, and a short one scheduled while it runs (as stage 2 is scheduled while the One-off trains): with
 * a single slot, the second waits for the first. Returns when the first ended and when the second started.
 */
export async function busyThenNext(holdMs: number): Promise<{ firstEnded: number; secondStarted: number }> {
  const first = hold(holdMs);
  await sleep(holdMs / 3);
  const second = mark();
  return { firstEnded: await first, secondStarted: await second };
}
