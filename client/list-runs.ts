import { ActivityFailure, type Client } from '@temporalio/client';
import { PIFT_STEP, WORKFLOW_TYPE } from '../common/constants';

export interface RunSummary {
  runId: string;
  status: string;
  /** The PiftStep search attribute: where the run is, or where it stopped. */
  step?: string;
  startTime: Date;
  closeTime?: Date;
}

/**
 * The step a failed run failed in: the activity whose failure ended it, as the run's failure names it (the search
 * attribute only says `failed`), through a child workflow too. Failures of no activity (the input's own check) are
 * the `validate` step's.
 */
export async function failedStep(client: Client, runId: string): Promise<string> {
  try {
    await client.workflow.getHandle(runId).result();
  } catch (failure) {
    for (let e: unknown = failure; e; e = (e as { cause?: unknown }).cause)
      if (e instanceof ActivityFailure) return e.activityId ?? e.activityType ?? 'activity';
  }
  return 'validate';
}

/** The most recent Phased IFT runs in the namespace, newest first (the server's visibility store). */
export async function listRuns(client: Client, opts: { limit?: number } = {}): Promise<RunSummary[]> {
  const limit = opts.limit ?? 20;
  const runs: RunSummary[] = [];
  for await (const w of client.workflow.list({ query: `WorkflowType = '${WORKFLOW_TYPE}'`, pageSize: limit })) {
    runs.push({
      runId: w.workflowId,
      status: w.status.name,
      step: w.typedSearchAttributes.get(PIFT_STEP),
      startTime: w.startTime,
      ...(w.closeTime ? { closeTime: w.closeTime } : {}),
    });
    if (runs.length >= limit) break;
  }
  // Where a failed run stopped is what its user looks for first.
  await Promise.all(
    runs
      .filter((r) => r.status === 'FAILED')
      .map(async (r) => {
        r.step = `failed in ${await failedStep(client, r.runId).catch(() => r.step ?? '?')}`;
      }),
  );
  return runs;
}

/** A fixed-width table for the terminal. */
export function formatRuns(runs: RunSummary[]): string {
  if (runs.length === 0) return 'no runs yet';
  const rows = [
    ['RUN', 'STATUS', 'STEP', 'STARTED'],
    ...runs.map((r) => [r.runId, r.status, r.step ?? '-', r.startTime.toISOString().replace(/\.\d+Z$/, 'Z')]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const line = (row: string[]) => row.map((cell, i) => cell.padEnd(widths[i])).join('  ');
  return rows.map((row) => line(row).trimEnd()).join('\n');
}
