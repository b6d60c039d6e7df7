import type { Client } from '@temporalio/client';
import { failureDetail, FailureType, failureTypeOf } from '../common/failures';
import { describeProgress, describeWaiting, describeWork, workProgress } from './progress-display';
import { unpolledQueues, type NeededQueue } from './queue-pollers';
import { CPU_TASK_QUEUE, GPU_TASK_QUEUE } from '../common/constants';
import { runStartInput } from './start-run';
import {
  innermostMessage,
  runningActivities,
  runProgress,
  type RunningActivity,
  type RunProgress,
} from './run-progress';

/** Why a run failed, by type: the type decides what the user should do next. */
export interface RunFailure {
  /** FailureType (BadInput, WorkerMisconfigured, TransientInfra) or another ApplicationFailure type. */
  type?: string;
  message: string;
  /** For WorkerMisconfigured: the environment variable or URI to fix. */
  setting?: string;
}

export interface RunStatus {
  runId: string;
  uiLink: string;
  progress: RunProgress;
  /** Queues the running run needs that no worker polls. */
  unpolled: NeededQueue[];
  /** Of those, queues whose workers are busy: no free slot polls, but an activity there heartbeats. */
  busy?: BusyQueue[];
  failure?: RunFailure;
}

/** The failure of a failed run (WorkflowFailedError → ActivityFailure → ApplicationFailure), by type. */
export function runFailureOf(err: unknown): RunFailure {
  const setting = failureDetail(err, FailureType.WorkerMisconfigured, 'setting') as string | undefined;
  return { type: failureTypeOf(err), message: innermostMessage(err), ...(setting ? { setting } : {}) };
}

/** What to do after a failure. Bad input fails the same way on resume; only a new run with fixed input helps. */
export function failureHint(runId: string, failure: RunFailure | undefined): string {
  const resume = `npm run pift -- resume ${runId}`;
  const setting = failure?.setting ?? 'see the message above';
  const hints: Record<string, string> = {
    [FailureType.BadInput]: 'fix the input and start a new run (resume would fail the same way)',
    [FailureType.WorkerMisconfigured]: `fix the worker's environment (${setting}), then resume: ${resume}`,
    // Resume asks the same questions of the same model again: only another model or a wider limit changes that.
    UnparseableScores:
      'the scoring model did not answer with a score often enough: use another model (input.scorer.model), or ' +
      'allow more unscored rows (input.scorer.maxFailedFraction) or re-asks (input.scorer.parseRetries), in a new run',
    [FailureType.CorruptArtifact]: `a stored output was damaged; resume recomputes the step that wrote it: ${resume}`,
  };
  return hints[failure?.type ?? ''] ?? `resume it with: ${resume}`;
}

/** `BadInput: data.jsonl line 2: missing "output"`. */
export const typed = (f: { type?: string; message: string }): string => `${f.type ? `${f.type}: ` : ''}${f.message}`;

function describeActivity(a: RunningActivity): string {
  const attempts = a.maximumAttempts > 0 ? `${a.attempt}/${a.maximumAttempts}` : `${a.attempt}`;
  const where = a.taskQueue ? ` on ${a.taskQueue}` : '';
  let line = `running: ${a.name} (${a.type}${where}, ${a.state}), attempt ${attempts}`;
  const w = workProgress(a);
  // A training's count without its rate and time left: `trainer step 40/120 loss 1.235`.
  const count = w && describeWork({ ...w, tokensPerSecond: undefined, etaSeconds: undefined }).slice(w.name.length);
  if (w) line += ` |${w.kind === 'training' ? ' trainer' : ''}${count}`;
  const waiting = describeWaiting(a.details);
  if (waiting) line += `\n  ${waiting}`;
  if (a.lastFailure) line += `\n  last failure: ${typed(a.lastFailure)}`;
  return line;
}

/** The text `pift status` prints. */
export function formatStatus(s: RunStatus): string {
  const closed = s.progress.status !== 'RUNNING';
  const where = closed ? `stopped at: ${s.progress.step}` : describeProgress(s.progress);
  const lines = [`run ${s.runId}: ${s.progress.status}`, `Web UI: ${s.uiLink}`, where];
  // A closed run still says what it finished: what a resume would not do again.
  if (closed && s.progress.finished.length) lines.push(`done: ${s.progress.finished.join(', ')}`);
  for (const a of s.progress.activities) lines.push(describeActivity(a));
  lines.push(...workerLines(s));
  if (s.failure) lines.push(`failed: ${typed(s.failure)}`);
  if (s.failure || ['CANCELLED', 'TERMINATED', 'TIMED_OUT'].includes(s.progress.status))
    lines.push(`next: ${failureHint(s.runId, s.failure)}`);
  return lines.join('\n');
}

/**
 * The queues a run needs: its own (the CPU worker's) and, unless it trains nothing (export-only), its GPU queue, as a
 * pending GPU activity names it, else as the run was started with, else the deployment default.
 */
export async function neededQueues(
  client: Client,
  runId: string,
  defaultGpuQueue: string,
  progress?: RunProgress,
): Promise<NeededQueue[]> {
  const taskQueue = progress?.taskQueue ?? (await client.workflow.getHandle(runId).describe()).taskQueue;
  // The model check runs on the GPU worker's side queue; the worker to start is named by its main queue.
  const pendingGpu = progress?.activities.find(
    (a) => a.taskQueue && a.taskQueue !== taskQueue && a.type !== 'checkModel',
  )?.taskQueue;
  const input = (await runStartInput(client, runId).catch(() => undefined))?.input;
  const cpu: NeededQueue = { queue: taskQueue, kind: 'cpu' };
  if (input?.training?.mode === 'export-only') return [cpu];
  return [cpu, { queue: pendingGpu ?? input?.gpuTaskQueue ?? defaultGpuQueue, kind: 'gpu' }];
}

/** A poller unseen this long, with an activity there heartbeating, is a worker busy with a run, not one gone. */
const LIVE_HEARTBEAT_MS = 2 * 60_000;

/** A queue without an idle poller whose worker is at work: for this run, or for the running run `by`. */
export type BusyQueue = NeededQueue & { by?: string };

/** What `status` and `run` say about the workers a run needs. */
export const workerLines = (s: Pick<RunStatus, 'busy' | 'unpolled'>): string[] => [
  ...(s.busy ?? []).map(
    (q) => `busy: every worker slot on ${q.queue} is taken by ${q.by ? `run ${q.by}` : 'this run'}'s running work`,
  ),
  ...s.unpolled.map(({ queue, kind }) => {
    const usual = kind === 'cpu' ? CPU_TASK_QUEUE : GPU_TASK_QUEUE;
    const override = queue === usual ? '' : ` and PIFT_${kind.toUpperCase()}_TASK_QUEUE=${queue}`;
    return `warning: no worker is polling ${queue}: start one with npm run worker:${kind}${override}`;
  }),
];

/**
 * Of the unpolled queues, those whose workers are busy (a worker polls nothing while every slot works): a started
 * activity of a running run there, this one or another, heartbeated just now.
 */
export async function busyWorkers(
  client: Client,
  runId: string,
  unpolled: NeededQueue[],
  now = Date.now(),
): Promise<BusyQueue[]> {
  const busy: BusyQueue[] = [];
  // Every queue has an idle poller (the usual case): no listing of the running runs.
  if (unpolled.length === 0) return busy;
  for await (const run of client.workflow.list({ query: 'ExecutionStatus = "Running"' })) {
    if (busy.length === unpolled.length) break;
    const { raw } = await client.workflow.getHandle(run.workflowId).describe();
    for (const a of await runningActivities(raw, client.options.loadedDataConverter)) {
      const q = unpolled.find(
        (n) => n.queue === (a.taskQueue ?? run.taskQueue) && !busy.some((b) => b.queue === n.queue),
      );
      const live = a.state === 'started' && a.lastHeartbeat && now - a.lastHeartbeat.getTime() < LIVE_HEARTBEAT_MS;
      if (q && live) busy.push({ ...q, ...(run.workflowId !== runId && { by: run.workflowId }) });
    }
  }
  return busy;
}

/** The queues a run needs without an idle worker: `busy` where a worker is at work, `unpolled` where none is. */
export async function idleWorkers(client: Client, runId: string, gpuTaskQueue: string, progress?: RunProgress) {
  const unpolled = await unpolledQueues(client, await neededQueues(client, runId, gpuTaskQueue, progress));
  const busy = await busyWorkers(client, runId, unpolled).catch((): BusyQueue[] => []);
  return { busy, unpolled: unpolled.filter((q) => !busy.some((b) => b.queue === q.queue)) };
}

/** Everything `pift status` shows about a run. */
export async function runStatus(
  client: Client,
  runId: string,
  opts: { uiLink: string; gpuTaskQueue: string },
): Promise<RunStatus> {
  const progress = await runProgress(client, runId);
  const { unpolled, busy } =
    progress.status === 'RUNNING'
      ? await idleWorkers(client, runId, opts.gpuTaskQueue, progress)
      : { unpolled: [], busy: [] };
  const handle = client.workflow.getHandle(runId);
  const failure = progress.status === 'FAILED' ? await handle.result().then(() => undefined, runFailureOf) : undefined;
  return { runId, uiLink: opts.uiLink, progress, unpolled, busy, ...(failure ? { failure } : {}) };
}
