import {
  decodePendingActivityState,
  type Client,
  type WorkflowClient,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import type { LoadedDataConverter } from '@temporalio/common';
import {
  decodeArrayFromPayloads,
  decodeOptionalFailureToOptionalError,
} from '@temporalio/common/lib/internal-non-workflow';
import type { TrainerProgress } from '../activities/types';
import { PIFT_STEP } from '../common/constants';
import { failureTypeOf } from '../common/failures';
import { progressQuery, type Progress } from '../workflows/messages';

/** One activity of the run that is scheduled, running or waiting for its next attempt. */
export interface RunningActivity {
  /** What it does: 'stage-2', 'score', 'generate-one-off' (the activity id the workflow gives each call). */
  name: string;
  /** The activity type: trainStage, scoreDifficulty, ... */
  type: string;
  taskQueue?: string;
  /** 'scheduled' (no worker has picked it up), 'started', 'cancel requested', 'paused'. */
  state: string;
  attempt: number;
  /** 0 = unlimited. */
  maximumAttempts: number;
  lastFailure?: { type?: string; message: string };
  /** The last heartbeat's details, decoded with the client's data converter. */
  details?: unknown;
  lastHeartbeat?: Date;
}

/** The workflow's own progress (query) merged with what the server knows of its running activities. */
export interface RunProgress extends Progress {
  status: WorkflowExecutionDescription['status']['name'];
  /** The run's own task queue, polled by the CPU worker. */
  taskQueue: string;
  activities: RunningActivity[];
  /** Latest trainer report per training ('stage-1', 'one-off', ...), from the heartbeat details. */
  training: Record<string, TrainerProgress>;
}

const isTrainerProgress = (d: unknown): d is TrainerProgress =>
  typeof d === 'object' && d !== null && typeof (d as TrainerProgress).name === 'string' && 'totalSteps' in d;

const tsToDate = (t?: { seconds?: unknown; nanos?: number | null } | null): Date | undefined =>
  t?.seconds == null ? undefined : new Date(Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6));

/** The pending activities of a describe() response, with heartbeat details and last failures decoded. */
export async function runningActivities(
  raw: WorkflowExecutionDescription['raw'],
  converter: LoadedDataConverter,
): Promise<RunningActivity[]> {
  return Promise.all(
    (raw.pendingActivities ?? []).map(async (a) => {
      const [details] = await decodeArrayFromPayloads(converter, a.heartbeatDetails?.payloads);
      const failure = a.lastFailure ? await decodeOptionalFailureToOptionalError(converter, a.lastFailure) : undefined;
      const type = a.activityType?.name ?? 'activity';
      // Runs started before activities were named have numeric ids; their trainer's heartbeat still names them.
      const named = a.activityId && !/^\d+$/.test(a.activityId) ? a.activityId : undefined;
      return {
        name: named ?? (isTrainerProgress(details) ? details.name : type),
        type,
        taskQueue: a.activityOptions?.taskQueue?.name ?? undefined,
        state: decodePendingActivityState(a.state)?.toLowerCase().replace('_', ' ') ?? 'pending',
        attempt: a.attempt ?? 1,
        maximumAttempts: a.maximumAttempts ?? 0,
        ...(failure ? { lastFailure: { type: failureTypeOf(failure), message: innermostMessage(failure) } } : {}),
        ...(details !== undefined ? { details } : {}),
        ...(a.lastHeartbeatTime ? { lastHeartbeat: tsToDate(a.lastHeartbeatTime) } : {}),
      };
    }),
  );
}

/** The message of the deepest cause: "ActivityFailure: activity failed" says less than what made it fail. */
export function innermostMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  let text = e?.message ?? String(err);
  while (e?.cause) {
    e = e.cause as { message?: string; cause?: unknown };
    if (e.message) text = e.message;
  }
  return text;
}

/**
 * Where a run is: the workflow's `progress` query (step, finished steps, error) plus its running activities as the
 * server sees them (attempt, last failure, heartbeat details, among them the trainer's step and loss). The query needs
 * a CPU worker; without one, the step comes from the PiftStep search attribute.
 */
export async function runProgress(client: Client | WorkflowClient, runId: string): Promise<RunProgress> {
  const workflow = 'workflow' in client ? client.workflow : client;
  const handle = workflow.getHandle(runId);
  const description = await handle.describe();
  // A query waits for a worker; give up soon so a run with no CPU worker still shows what the server knows.
  const queried = await workflow
    .withDeadline(Date.now() + 5_000, () => handle.query(progressQuery))
    .catch(() => undefined);
  const activities = await runningActivities(description.raw, workflow.options.loadedDataConverter);
  const training: Record<string, TrainerProgress> = {};
  for (const a of activities) if (isTrainerProgress(a.details)) training[a.details.name] = a.details;
  return {
    runId,
    step: description.typedSearchAttributes.get(PIFT_STEP) ?? 'unknown',
    finished: [],
    ...queried,
    status: description.status.name,
    taskQueue: description.taskQueue,
    activities,
    training,
  };
}
