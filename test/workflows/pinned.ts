// A workflow for tests: waits for a signal, then asks an activity which build serves it. Under pinned Worker
// Versioning the activity runs on the workers of the build the run started on.
import { condition, defineSignal, proxyActivities, setHandler } from '@temporalio/workflow';

export const goSignal = defineSignal('go');

const { buildId } = proxyActivities<{ buildId(): Promise<string> }>({ startToCloseTimeout: '1 minute' });

export async function servedBy(): Promise<string> {
  let go = false;
  setHandler(goSignal, () => void (go = true));
  await condition(() => go);
  return buildId();
}
