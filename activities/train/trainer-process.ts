import { CancelledFailure, Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../common/failures';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** One JSON line of the Python trainer's stdout protocol (see trainer/README.md). */
export interface TrainerEvent {
  event: string;
  [field: string]: unknown;
}

export interface TrainerRun {
  python: string;
  script: string;
  configPath: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  onEvent: (e: TrainerEvent) => void | Promise<void>;
  /** No stdout line for this long means a hung trainer: kill it and let Temporal retry. */
  progressTimeoutMs: number;
  /** Grace between SIGTERM (the trainer saves a checkpoint) and SIGKILL. */
  graceMs?: number;
  heartbeatEveryMs?: number;
  heartbeat: () => void;
  /** The trainer's pid, which is also its process group id. */
  onSpawn?: (pid: number) => void;
}

/** Exit code the trainer uses for bad data or configuration (EX_DATAERR): retrying cannot help. */
const EXIT_DATA_ERROR = 65;

/**
 * Runs the trainer in its own process group, heartbeating while it lives, and kills the whole group on
 * cancellation, on a hung trainer, or when this activity fails for any other reason.
 */
export async function runTrainerProcess(run: TrainerRun): Promise<void> {
  const { python, script, configPath } = run;
  const child = spawn(python, [script, configPath], {
    cwd: run.cwd,
    env: {
      ...withoutSecrets(run.env),
      PYTHONUNBUFFERED: '1',
      HF_HUB_OFFLINE: '1',
      PIFT_PARENT_PID: String(process.pid),
    },
    detached: true, // its own process group, so a kill reaches the trainer's own children too
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid) run.onSpawn?.(child.pid);
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, signal);
    } catch {
      /* already gone */
    }
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });

  const stderrTail: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderrTail.push(line);
    if (stderrTail.length > 40) stderrTail.shift();
  });

  let lastLine = Date.now();
  let lastError: string | undefined;
  let pending: Promise<void> = Promise.resolve();
  let eventFailure: unknown;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lastLine = Date.now();
    let event: TrainerEvent;
    try {
      event = JSON.parse(line) as TrainerEvent;
    } catch {
      return; // a stray print from a library; the protocol lines are the JSON ones
    }
    if (event.event === 'error') lastError = String(event.message ?? '');
    // Events are handled one at a time, in order (checkpoint uploads must not overlap or reorder).
    pending = pending.then(async () => {
      if (eventFailure) return;
      try {
        await run.onEvent(event);
      } catch (err) {
        eventFailure = err;
        killGroup('SIGKILL');
      }
    });
  });

  const ctx = Context.current();
  let hung = false;
  const ticker = setInterval(() => {
    run.heartbeat();
    if (Date.now() - lastLine > run.progressTimeoutMs) {
      hung = true;
      killGroup('SIGKILL');
    }
  }, run.heartbeatEveryMs ?? 5_000);

  let cancelled = false;
  try {
    const outcome = await Promise.race([exited, ctx.cancelled.catch((err) => Promise.reject(err))]);
    await pending;
    if (eventFailure) throw eventFailure;
    if (hung) {
      throw ApplicationFailure.retryable(
        `trainer printed nothing for ${run.progressTimeoutMs} ms and was killed`,
        'TrainerHung',
      );
    }
    if (outcome.code === 0) return;
    const detail = lastError ?? stderrTail.slice(-15).join('\n');
    if (outcome.code === EXIT_DATA_ERROR) {
      throw ApplicationFailure.nonRetryable(detail || 'trainer rejected its input', FailureType.BadInput);
    }
    throw ApplicationFailure.retryable(
      `trainer exited with ${outcome.signal ?? `code ${outcome.code}`}${detail ? `:\n${detail}` : ''}`,
      'TrainerCrashed',
    );
  } catch (err) {
    cancelled = err instanceof CancelledFailure;
    throw err;
  } finally {
    clearInterval(ticker);
    if (child.exitCode === null && child.signalCode === null) {
      // SIGTERM first: the trainer saves a resumable checkpoint when it can.
      killGroup('SIGTERM');
      const gone = await Promise.race([
        exited.then(() => true),
        sleep(cancelled ? (run.graceMs ?? 10_000) : 2_000).then(() => false),
      ]);
      if (!gone) killGroup('SIGKILL');
      await exited.catch(() => undefined);
      // A checkpoint saved on SIGTERM is uploaded before the activity ends, so a cancelled run resumes from it and
      // no upload outlives the attempt (the activity keeps heartbeating meanwhile).
      await pending;
    }
    // Anything the trainer itself started dies with the group.
    killGroup('SIGKILL');
  }
}

/** The trainer never talks to the store or an LLM endpoint (the activity does), so it gets none of their secrets. */
export const withoutSecrets = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(env).filter(([k]) => !/KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL/i.test(k)));

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
