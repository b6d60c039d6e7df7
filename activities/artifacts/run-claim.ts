import { InvalidDataError } from '../../common/failures';
import type { ObjectStore } from '../../store';
import { runOwnerKey } from './run-keys';

/** The workflow a run id belongs to: its id (the same on `resume` and every re-run) and the run that claimed it. */
export interface RunOwner {
  workflowId: string;
  workflowRunId: string;
}

/**
 * Claims the run's prefix for this workflow with a write that succeeds only where nothing is yet (S3
 * `If-None-Match: *`, a local exclusive link), so of two workflows started at once with one run id exactly one gets
 * it. The owner's own re-runs and `resume` find their claim and go on; any other workflow is refused.
 * @throws InvalidDataError naming `runId` when another workflow owns the run id.
 */
export async function claimRun(store: ObjectStore, runId: string, owner: RunOwner): Promise<void> {
  const key = runOwnerKey(runId);
  if (await store.putIfAbsent(key, `${JSON.stringify(owner, null, 2)}\n`)) return;
  const held = JSON.parse(await store.getText(key)) as Partial<RunOwner>;
  if (held.workflowId === owner.workflowId) return;
  throw new InvalidDataError(
    `runId: run id ${JSON.stringify(runId)} belongs to workflow ${JSON.stringify(held.workflowId)} ` +
      `(${store.uriFor(key)}); start this one with another run id, or resume that workflow`,
    { field: 'runId' },
  );
}
