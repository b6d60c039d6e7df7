import { SingleBar, Presets } from 'cli-progress';
import type { WorkflowHandle } from '@temporalio/client';
import type { TrainerProgress } from '../activities/types';
import type { Progress } from '../workflows/messages';
import { runProgress } from './run-progress';

/** One status line, e.g. `stage-2 (2/3) | stage-2 step 40/120 loss 1.234 | done: score, segment, stage-1`. */
export function describeProgress(p: Progress & { training?: Record<string, TrainerProgress> }): string {
  const stage = p.stage && p.stages ? ` (${p.stage}/${p.stages})` : '';
  const training = p.training ?? {};
  const t = training[p.step] ?? Object.values(training).at(-1);
  const trainer = t
    ? ` | ${t.name} step ${t.step}/${t.totalSteps}${t.loss !== undefined ? ` loss ${t.loss.toFixed(3)}` : ''}`
    : '';
  const done = p.finished.length ? ` | done: ${p.finished.join(', ')}` : '';
  return `${p.step}${stage}${trainer}${done}`;
}

/**
 * Polls the run's progress (workflow query plus the trainer's heartbeat details) until it closes: a live bar of
 * trainer steps on a terminal, a line per change otherwise (logs, CI).
 */
export async function followProgress<T>(
  handle: WorkflowHandle,
  result: Promise<T>,
  opts: { everyMs?: number; stream?: NodeJS.WriteStream } = {},
): Promise<T> {
  const stream = opts.stream ?? process.stderr;
  const bar = stream.isTTY
    ? new SingleBar({ format: '{bar} {value}/{total} {status}', hideCursor: true, stream }, Presets.shades_classic)
    : undefined;
  let last = '';
  let started = false;
  let closed = false;
  const poll = async () => {
    while (!closed) {
      const p = await runProgress(handle.client, handle.workflowId).catch(() => undefined);
      if (p && !closed) {
        const line = describeProgress(p);
        const t = p.training[p.step];
        if (bar) {
          if (!started) bar.start(t?.totalSteps ?? 1, 0, { status: line });
          started = true;
          bar.setTotal(t?.totalSteps ?? 1);
          bar.update(t?.step ?? 0, { status: line });
        } else if (line !== last) {
          stream.write(`${line}\n`);
        }
        last = line;
      }
      await new Promise((r) => setTimeout(r, opts.everyMs ?? 2000));
    }
  };
  const poller = poll();
  try {
    return await result;
  } finally {
    closed = true;
    await poller;
    bar?.stop();
  }
}
