import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { WorkflowHandle } from '@temporalio/client';
import { setTimeout as delay } from 'node:timers/promises';
import type { TrainerProgress } from '../activities/types';
import type { Progress } from '../workflows/messages';
import { runProgress, type RunProgress } from './run-progress';

/** What one running activity has done of its total, read from its last heartbeat's details. */
export interface WorkProgress {
  /** 'stage-2', 'one-off', 'generate-stage-1', 'evaluate', 'score'. */
  name: string;
  kind: 'training' | 'generation' | 'judging' | 'scoring';
  done: number;
  total: number;
  loss?: number;
  tokensPerSecond?: number;
  etaSeconds?: number;
  /** Generation: the benchmark being answered (the count is per benchmark). */
  benchmark?: string;
}

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/** Each kind of count an activity's heartbeat carries: the fields that count, and the unit shown with it. */
const COUNTS = {
  training: { field: 'step', of: 'totalSteps', unit: 'step' },
  judging: { field: 'judged', of: 'total', unit: 'judgments' },
  scoring: { field: 'scored', of: 'total', unit: 'rows scored' },
  generation: { field: 'done', of: 'total', unit: 'prompts' },
} as const;
const KINDS = Object.keys(COUNTS) as WorkProgress['kind'][];

/**
 * The progress in an activity's heartbeat details: the trainer's step (trainStage), prompts answered of a benchmark
 * (generateAnswers), judgments made (evaluate), rows scored (scoreDifficulty). Anything else has none.
 */
export function workProgress(a: { name: string; details?: unknown }): WorkProgress | undefined {
  const d = a.details as Record<string, unknown> | undefined;
  if (typeof d !== 'object' || d === null) return undefined;
  const kind = KINDS.find((k) => isNum(d[COUNTS[k].field]) && isNum(d[COUNTS[k].of]));
  if (kind === undefined) return undefined;
  // Only the trainer names its run in its heartbeat (older runs' trainings have numeric activity ids), with its rates.
  const training = kind === 'training';
  const numbers = (['loss', 'tokensPerSecond', 'etaSeconds'] as const).filter((k) => training && isNum(d[k]));
  const benchmark = kind === 'generation' && typeof d.benchmark === 'string' && d.benchmark ? d.benchmark : undefined;
  return {
    name: training && typeof d.name === 'string' ? d.name : a.name,
    kind,
    done: d[COUNTS[kind].field] as number,
    total: d[COUNTS[kind].of] as number,
    ...Object.fromEntries(numbers.map((k) => [k, d[k]])),
    ...(benchmark && { benchmark }),
  };
}

/**
 * `stage-2 step 40/120 loss 1.234 812 tok/s eta 2m05s`, `generate-stage-1 prompts 12/48 of heldout`,
 * `evaluate judgments 30/144`.
 */
export function describeWork(w: WorkProgress): string {
  const loss = w.loss !== undefined ? ` loss ${w.loss.toFixed(3)}` : '';
  const rate = w.tokensPerSecond !== undefined ? ` ${Math.round(w.tokensPerSecond)} tok/s` : '';
  const eta = w.etaSeconds !== undefined ? ` eta ${formatEta(w.etaSeconds)}` : '';
  const of = w.benchmark ? ` of ${w.benchmark}` : '';
  return `${w.name} ${COUNTS[w.kind].unit} ${w.done}/${w.total}${of}${loss}${rate}${eta}`;
}

/** `45s`, `2m05s`, `3h07m`. */
export function formatEta(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

type ProgressView = Progress & {
  training?: Record<string, TrainerProgress>;
  activities?: ReadonlyArray<{ name: string; details?: unknown; state?: string; taskQueue?: string }>;
};

/** Everything running with a count: every training (a stage and the baseline run at once), generation, judging. */
export function runningWork(p: ProgressView): WorkProgress[] {
  const fromActivities = (p.activities ?? []).map(workProgress).filter((w): w is WorkProgress => w !== undefined);
  if (fromActivities.length) return fromActivities;
  return Object.values(p.training ?? {}).flatMap((t) => workProgress({ name: t.name, details: t }) ?? []);
}

/**
 * The outage a step is waiting out, from its heartbeat (store/outage.ts): `waiting for the LLM endpoint … for 6m00s
 * (Request timed out.); gives up in 1h54m (PIFT_OUTAGE_TOLERANCE)`; undefined when it waits for nothing.
 */
export function describeWaiting(details: unknown, now = Date.now()): string | undefined {
  const d = details as Record<string, unknown> | undefined;
  if (typeof d !== 'object' || d === null || typeof d.waitingFor !== 'string') return undefined;
  // Seconds from now to a date of the heartbeat; NaN when it has none.
  const from = (k: 'since' | 'giveUpAt') => (Date.parse(d[k] as string) - now) / 1000;
  const since = Number.isNaN(from('since')) ? '' : ` for ${formatEta(-from('since'))}`;
  const why = typeof d.lastError === 'string' ? ` (${d.lastError})` : '';
  const left = Number.isNaN(from('giveUpAt'))
    ? ''
    : `; gives up in ${formatEta(from('giveUpAt'))} (PIFT_OUTAGE_TOLERANCE)`;
  return `waiting for ${d.waitingFor}${since}${why}${left}`;
}

/**
 * What runs now and what waits for a worker slot, by the activities the server holds: `running: one-off | waiting for
 * a free slot: stage-2`. Without them (no describe, or between two steps) the workflow's own step.
 */
function headline(p: ProgressView, now: number): string {
  const stageOf = (name: string) =>
    p.stages && /^stage-\d+$/.test(name) ? ` (${name.slice('stage-'.length)}/${p.stages})` : '';
  const started = (p.activities ?? []).filter((a) => a.state === undefined || a.state === 'started');
  const queued = (p.activities ?? []).filter((a) => a.state === 'scheduled');
  if (started.length + queued.length === 0) return `${p.step}${p.stage && p.stages ? ` (${p.stage}/${p.stages})` : ''}`;
  const running = started.map((a) => {
    const waiting = describeWaiting(a.details, now);
    return `${a.name}${stageOf(a.name)}${waiting ? ` ${waiting}` : ''}`;
  });
  const queues = [...new Set(queued.map((a) => a.taskQueue).filter(Boolean))];
  const where = queues.length ? ` on ${queues.join(', ')}` : '';
  return [
    ...(started.length ? [`running: ${running.join(', ')}`] : []),
    ...(queued.length ? [`waiting for a free worker slot${where}: ${queued.map((a) => a.name).join(', ')}`] : []),
  ].join(' | ');
}

const doneOf = (p: Progress) => (p.finished.length ? ` | done: ${p.finished.join(', ')}` : '');

/**
 * One status line, e.g. `running: stage-2 (2/3), one-off | stage-2 step 40/120 loss 1.234 | one-off step 200/360 |
 * done: score, segment, stage-1`.
 */
export function describeProgress(p: ProgressView, now = Date.now()): string {
  const work = runningWork(p).map((w) => ` | ${describeWork(w)}`);
  return `${headline(p, now)}${work.join('')}${doneOf(p)}`;
}

/** How often the run is polled: heartbeats reach the server within a few seconds (workers/create-workers.ts). */
export const PROGRESS_POLL_MS = 2000;

/**
 * Polls the run's progress (workflow query plus the heartbeat details of its running activities) until it closes: on
 * a terminal, a status line and a live bar for each activity that counts (each training with its own step count,
 * generation, judging); otherwise a line per change (logs, CI).
 */
export async function followProgress<T>(
  handle: WorkflowHandle,
  result: Promise<T>,
  opts: { everyMs?: number; stream?: NodeJS.WriteStream } = {},
): Promise<T> {
  const stream = opts.stream ?? process.stderr;
  const bars = stream.isTTY
    ? new MultiBar(
        { format: '{bar} {value}/{total} {status}', hideCursor: true, stream, clearOnComplete: false },
        Presets.shades_classic,
      )
    : undefined;
  // The status line (named '', a text without a bar), then a bar per running count; a bar whose work ended goes.
  const live = new Map<string, SingleBar>();
  const showBars = (multi: MultiBar, p: RunProgress) => {
    const rows = [{ name: '', done: 0, total: 0, status: `${headline(p, Date.now())}${doneOf(p)}` }, ...runningWork(p)];
    for (const [name, bar] of live) {
      if (rows.some((w) => w.name === name)) continue;
      multi.remove(bar);
      live.delete(name);
    }
    for (const w of rows) {
      const status = 'status' in w ? w.status : describeWork(w);
      const bar = live.get(w.name) ?? multi.create(w.total, w.done, { status }, w.name ? {} : { format: '{status}' });
      live.set(w.name, bar);
      bar.setTotal(w.total);
      bar.update(w.done, { status });
    }
  };
  let last = '';
  let closed = false;
  const poll = async () => {
    for (; !closed; await delay(opts.everyMs ?? PROGRESS_POLL_MS)) {
      const p = await runProgress(handle.client, handle.workflowId).catch(() => undefined);
      if (!p || closed) continue;
      const line = describeProgress(p);
      if (bars) showBars(bars, p);
      else if (line !== last) stream.write(`${line}\n`);
      last = line;
    }
  };
  const poller = poll();
  try {
    return await result;
  } finally {
    closed = true;
    await poller;
    bars?.stop();
  }
}
