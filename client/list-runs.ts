import type { Client } from '@temporalio/client';
import { PIFT_STEP, WORKFLOW_TYPE } from '../common/constants';

export interface RunSummary {
  runId: string;
  status: string;
  /** The PiftStep search attribute: where the run is, or where it stopped. */
  step?: string;
  startTime: Date;
  closeTime?: Date;
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
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
