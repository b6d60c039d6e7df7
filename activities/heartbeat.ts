import { Context } from '@temporalio/activity';

/**
 * Heartbeats every few seconds for as long as `fn` runs, with the latest details. Moving a model's weights in and out
 * of the store can outlast any heartbeat timeout, and cancellation only reaches an activity that heartbeats.
 */
export async function whileHeartbeating<T>(details: () => unknown, fn: () => Promise<T>, everyMs = 5_000): Promise<T> {
  const ctx = Context.current();
  const timer = setInterval(() => ctx.heartbeat(details()), everyMs);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}
