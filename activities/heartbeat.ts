import { Context } from '@temporalio/activity';
import { withTypedFailures } from '../common/failures';
import type { ActivityDeps } from './deps';

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

/** A step as an activity: failures reported by type, and with `details`, heartbeated while it runs. */
export const activityOf =
  (deps: ActivityDeps) =>
  <I, O>(step: (deps: ActivityDeps, input: I) => Promise<O>, details?: (input: I) => unknown) =>
  (input: I) =>
    withTypedFailures(() =>
      details
        ? whileHeartbeating(
            () => details(input),
            () => step(deps, input),
          )
        : step(deps, input),
    );

/**
 * The activity's heartbeat, sent at most once every `everyMs`: for steps that have news after every row. Each call
 * costs the SDK an encoding of the details and a message to its core, even though the server hears of one per
 * throttle interval; a million rows made that a million encodings, and garbage that outlived the young generation.
 * A step that calls this also runs under `whileHeartbeating`, which keeps heartbeating when no row finishes.
 */
export function heartbeatEvery(everyMs = 1_000): (details: unknown) => void {
  const ctx = Context.current();
  let last = -Infinity;
  return (details) => {
    const now = performance.now();
    if (now - last < everyMs) return;
    last = now;
    ctx.heartbeat(details);
  };
}
