import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { WorkflowHandle } from '@temporalio/client';
import type { TrainerProgress } from '../activities/types';
import type { Progress } from '../workflows/messages';
import { runProgress } from './run-progress';

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

/**
 * The progress in an activity's heartbeat details: the trainer's step (trainStage), prompts answered of a benchmark
 * (generateAnswers), judgments made (evaluate), rows scored (scoreDifficulty). Anything else has none.
 */
export function workProgress(a: { name: string; details?: unknown }): WorkProgress | undefined {
  const d = a.details as Record<string, unknown> | undefined;
  if (typeof d !== 'object' || d === null) return undefined;
  if (isNum(d.step) && isNum(d.totalSteps)) {
    const t = d as unknown as TrainerProgress;
    return {
      name: typeof t.name === 'string' ? t.name : a.name,
      kind: 'training',
      done: t.step,
      total: t.totalSteps,
      ...(isNum(t.loss) ? { loss: t.loss } : {}),
      ...(isNum(t.tokensPerSecond) ? { tokensPerSecond: t.tokensPerSecond } : {}),
      ...(isNum(t.etaSeconds) ? { etaSeconds: t.etaSeconds } : {}),
    };
  }
  if (isNum(d.judged) && isNum(d.total)) return { name: a.name, kind: 'judging', done: d.judged, total: d.total };
  if (isNum(d.scored) && isNum(d.total)) return { name: a.name, kind: 'scoring', done: d.scored, total: d.total };
  if (isNum(d.done) && isNum(d.total)) {
    return {
      name: a.name,
      kind: 'generation',
      done: d.done,
      total: d.total,
      ...(typeof d.benchmark === 'string' && d.benchmark ? { benchmark: d.benchmark } : {}),
    };
  }
  return undefined;
}

const UNITS: Record<WorkProgress['kind'], string> = {
  training: 'step',
  generation: 'prompts',
  judging: 'judgments',
  scoring: 'rows scored',
};

/**
 * `stage-2 step 40/120 loss 1.234 812 tok/s eta 2m05s`, `generate-stage-1 prompts 12/48 of heldout`,
 * `evaluate judgments 30/144`.
 */
export function describeWork(w: WorkProgress): string {
  const loss = w.loss !== undefined ? ` loss ${w.loss.toFixed(3)}` : '';
  const rate = w.tokensPerSecond !== undefined ? ` ${Math.round(w.tokensPerSecond)} tok/s` : '';
  const eta = w.etaSeconds !== undefined ? ` eta ${formatEta(w.etaSeconds)}` : '';
  const of = w.benchmark ? ` of ${w.benchmark}` : '';
  return `${w.name} ${UNITS[w.kind]} ${w.done}/${w.total}${of}${loss}${rate}${eta}`;
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
  activities?: ReadonlyArray<{ name: string; details?: unknown }>;
};

/** Everything running with a count: every training (a stage and the baseline run at once), generation, judging. */
export function runningWork(p: ProgressView): WorkProgress[] {
  const fromActivities = (p.activities ?? []).map(workProgress).filter((w): w is WorkProgress => w !== undefined);
  if (fromActivities.length) return fromActivities;
  return Object.values(p.training ?? {}).flatMap((t) => workProgress({ name: t.name, details: t }) ?? []);
}

/**
 * One status line, e.g. `stage-2 (2/3) | stage-2 step 40/120 loss 1.234 | one-off step 200/360 | done: score, segment,
 * stage-1`.
 */
export function describeProgress(p: ProgressView): string {
  const stage = p.stage && p.stages ? ` (${p.stage}/${p.stages})` : '';
  const work = runningWork(p)
    .map((w) => ` | ${describeWork(w)}`)
    .join('');
  const done = p.finished.length ? ` | done: ${p.finished.join(', ')}` : '';
  return `${p.step}${stage}${work}${done}`;
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
  let header: SingleBar | undefined;
  const live = new Map<string, SingleBar>();
  let last = '';
  let closed = false;
  const poll = async () => {
    while (!closed) {
      const p = await runProgress(handle.client, handle.workflowId).catch(() => undefined);
      if (p && !closed) {
        const line = describeProgress(p);
        if (bars) {
          const stage = p.stage && p.stages ? ` (${p.stage}/${p.stages})` : '';
          const status = `${p.step}${stage}${p.finished.length ? ` | done: ${p.finished.join(', ')}` : ''}`;
          header ??= bars.create(0, 0, { status }, { format: '{status}' });
          header.update(0, { status });
          const work = runningWork(p);
          for (const [name, bar] of live) {
            if (!work.some((w) => w.name === name)) {
              bars.remove(bar);
              live.delete(name);
            }
          }
          for (const w of work) {
            const status = describeWork(w);
            const bar = live.get(w.name) ?? bars.create(w.total, w.done, { status });
            live.set(w.name, bar);
            bar.setTotal(w.total);
            bar.update(w.done, { status });
          }
        } else if (line !== last) {
          stream.write(`${line}\n`);
        }
        last = line;
      }
      await new Promise((r) => setTimeout(r, opts.everyMs ?? PROGRESS_POLL_MS));
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
