import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { workflowBundle } from './workflow-bundle';

/**
 * Replays a finished run's history with the current workflow code (a determinism error fails the test), and with
 * PIFT_RECORD_HISTORIES=1 stores it as test/histories/<name>.pb, which test/replay.test.ts then replays on every
 * later change: a change that would break runs in flight in that state (failed, cancelled, resumed) fails there.
 */
export async function replayAndRecord(client: Client, workflowId: string, name: string): Promise<void> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  try {
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle(), replayName: name }, history);
  } catch (err) {
    // A replay failure is rare and depends on timing: the events' order is what tells why, and CI keeps only the log.
    const events = (history.events ?? []).map((e) => `${e.eventId}:${eventName(e.eventType)}`).join(' ');
    throw new Error(`replay of ${name} failed: ${String(err)}\nevents: ${events}`, { cause: err });
  }
  if (process.env.PIFT_RECORD_HISTORIES) {
    // Binary protobuf: the SDK's JSON history helpers break on this release's protobufjs pairing.
    writeFileSync(
      join(__dirname, '..', 'histories', `${name}.pb`),
      temporal.api.history.v1.History.encode(withoutStackTraces(history)).finish(),
    );
  }
}

/** Failure stack traces name the recording machine's folders; replay never reads them. */
function withoutStackTraces<T>(value: T): T {
  if (Array.isArray(value)) value.forEach(withoutStackTraces);
  else if (value && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      if (key === 'stackTrace' && typeof inner === 'string') (value as Record<string, unknown>)[key] = '';
      else withoutStackTraces(inner);
    }
  }
  return value;
}

function eventName(type: temporal.api.enums.v1.EventType | null | undefined): string {
  const name = type == null ? undefined : temporal.api.enums.v1.EventType[type];
  return (name ?? String(type)).replace(/^EVENT_TYPE_/, '');
}
