import { CancelledFailure } from '@temporalio/activity';
import { activityContext } from '../../store/outage';
import { ApplicationFailure } from '@temporalio/common';
import Ajv from 'ajv';
import { badSetting, FailureType, WorkerMisconfiguredError } from '../../common/failures';
import type { ResolvedTraining } from '../../common/settings/schema';
import { TrainerEventSchemas, type TrainerEvent, type TrainerModule } from '../../common/settings/trainer-events';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { createInterface } from 'node:readline';

export type TrainerLaunch = Pick<ResolvedTraining, 'processes' | 'distributed'>;

export type { TrainerEvent, TrainerModule };

const ajv = new Ajv({ allErrors: true, strict: true });
const validators = new Map(
  Object.entries(TrainerEventSchemas).map(([module, schema]) => [module, ajv.compile(schema)]),
);

/**
 * A stdout line of `module` as its typed event; undefined for a line that is not JSON (a stray print from a
 * library); throws for JSON outside the protocol, which is a trainer of another version than this worker's.
 */
export function parseTrainerEvent<M extends TrainerModule>(module: M, line: string): TrainerEvent<M> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  // No line of a module outside the protocol passes.
  const validate = validators.get(module) ?? ajv.compile(false);
  if (validate(value)) return value as TrainerEvent<M>;
  throw new WorkerMisconfiguredError(
    `${module} wrote a line outside the trainer protocol (schema/trainer-events.schema.json: ` +
      `${ajv.errorsText(validate.errors)}): ${line.slice(0, 300)}; install the trainer package of this worker's ` +
      'version (scripts/setup.sh)',
    'PIFT_PYTHON',
    `python -m ${module}`,
  );
}

export interface TrainerRun<M extends TrainerModule = TrainerModule> {
  /** A Python whose environment has the trainer package installed (scripts/setup.sh does so for .venv). */
  python: string;
  module: M;
  configPath: string;
  /** The job's scratch directory; the module is found through the installed package, not through the cwd. */
  cwd: string;
  env: NodeJS.ProcessEnv;
  onEvent: (e: TrainerEvent<M>) => void | Promise<void>;
  /** No stdout line for this long means a hung trainer: kill it and let Temporal retry. */
  progressTimeoutMs?: number;
  /** The whole run's limit (a short module's): past it the process is killed and its exit code is null. */
  timeoutMs?: number;
  /** Grace between SIGTERM (the trainer saves a checkpoint) and SIGKILL. */
  graceMs?: number;
  /** Called every 5 s while the trainer lives. */
  heartbeat?: () => void;
  /** The trainer's pid, which is also its process group id. */
  onSpawn?: (pid: number) => void;
  /** Several processes (one per GPU) under `pift.launcher`: torchrun for DDP, accelerate for FSDP or ZeRO-3. */
  launch?: TrainerLaunch;
  /** Every stderr line (the trainer's log), e.g. to keep the whole log. */
  onStderr?: (line: string) => void;
}

/** `python -m MODULE CONFIG`, or the launcher that starts the module once per process in the same process group. */
export function trainerArgs(module: TrainerModule, configPath: string, launch?: TrainerLaunch): string[] {
  if (!launch || launch.processes <= 1) return ['-m', module, configPath];
  if (module !== 'pift.train') throw new Error(`${module} runs as one process`);
  return [
    '-m',
    'pift.launcher',
    '--processes',
    String(launch.processes),
    '--distributed',
    launch.distributed,
    configPath,
  ];
}

/** Exit code the trainer uses for bad data or configuration (EX_DATAERR): retrying cannot help. */
export const EXIT_DATA_ERROR = 65;
/**
 * Exit code of a trainer whose loss became NaN or infinite. Training is deterministic, so every retry diverges at the
 * same step: like bad input, it is fixed by changing the run's settings (learning rate, precision) or data.
 */
export const EXIT_DIVERGED = 70;
/** Exit code the trainer uses when its disk is full (EX_IOERR). */
const EXIT_DISK_FULL = 74;

/**
 * How a full disk shows in a trainer that did not report it itself: Python's OSError, a raw errno name, or torch's
 * zip writer failing half-way through a checkpoint.
 */
const DISK_FULL_TEXT =
  /No space left on device|ENOSPC|Disk quota exceeded|EDQUOT|unexpected pos|PytorchStreamWriter failed/i;

/** A trainer that died of a full disk: no retry finds space that is not there. */
export function diskFullFailure(code: number | null, kind: string | undefined, detail: string, workDir: string) {
  if (code !== EXIT_DISK_FULL && kind !== 'disk_full' && !DISK_FULL_TEXT.test(detail)) return undefined;
  return new WorkerMisconfiguredError(
    `scratch space full: the trainer ran out of disk space under ${workDir}; free space there or point ` +
      `PIFT_WORKDIR at a bigger disk (trainer said: ${detail.split('\n').slice(-3).join(' | ') || `exit ${code}`})`,
    'PIFT_WORKDIR',
    `training under ${workDir}`,
  );
}

/**
 * Runs the trainer with the environment `trainerEnv` makes of `run.env`, and turns a failed exit into the failure that
 * says what to fix: a full disk, bad input or divergence (never retried), a missing package, a hang or a crash.
 */
export async function runTrainerProcess<M extends TrainerModule>(run: TrainerRun<M>): Promise<void> {
  const exit = await watchTrainer({ ...run, env: trainerEnv(run.env) });
  const { code, stderrTail } = exit;
  if (exit.hung) {
    throw ApplicationFailure.retryable(
      `trainer printed nothing for ${run.progressTimeoutMs} ms and was killed`,
      'TrainerHung',
    );
  }
  if (code === 0) return;
  const detail = exit.error?.message ?? stderrTail.slice(-15).join('\n');
  const diskFull = diskFullFailure(code, exit.error?.kind, `${detail}\n${stderrTail.join('\n')}`, run.cwd);
  if (diskFull) throw diskFull;
  const refused = code === EXIT_DIVERGED ? 'training diverged (non-finite loss)' : 'trainer rejected its input';
  if (code === EXIT_DIVERGED || code === EXIT_DATA_ERROR) {
    throw ApplicationFailure.nonRetryable(detail || refused, FailureType.BadInput);
  }
  const missing = exit.sawProtocolLine ? undefined : missingPackage(run.python, run.module, stderrTail);
  if (missing) throw missing;
  throw ApplicationFailure.retryable(
    `trainer exited with ${exit.signal ?? `code ${code}`}${detail ? `:\n${detail}` : ''}`,
    'TrainerCrashed',
  );
}

/**
 * The one runner of every trainer module: starts it in its own process group with exactly `env`, hands its protocol
 * lines to `onEvent` one at a time, heartbeats while it lives, and kills the whole group on cancellation, on a hang,
 * past `timeoutMs`, or when this activity fails for any other reason. Works outside an activity too (no heartbeat or
 * cancellation there).
 */
export async function watchTrainer<M extends TrainerModule>(run: TrainerRun<M>) {
  const { python, module } = run;
  const child = spawn(python, trainerArgs(module, run.configPath, run.launch), {
    cwd: run.cwd,
    env: { ...run.env, PIFT_PARENT_PID: String(process.pid) },
    detached: true, // its own process group, so a kill reaches the trainer's own children too
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid) run.onSpawn?.(child.pid);
  const killGroup = (signal: NodeJS.Signals) => signalGroup(child.pid, signal);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      const why = `cannot start the trainer's python ${python}: ${err.code}`;
      reject(new WorkerMisconfiguredError(why, 'PIFT_PYTHON', `${python} -m ${module}`));
    });
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });

  const stderrTail: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    run.onStderr?.(line);
    stderrTail.push(line);
    if (stderrTail.length > 40) stderrTail.shift();
  });

  let lastLine = Date.now();
  let sawProtocolLine = false;
  /** Its last `error` event. */
  let error: { message: string; kind: string } | undefined;
  let pending: Promise<void> = Promise.resolve();
  let eventFailure: unknown;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lastLine = Date.now();
    let event: TrainerEvent<M> | undefined;
    try {
      event = parseTrainerEvent(module, line);
    } catch (err) {
      eventFailure ??= err;
      killGroup('SIGKILL');
      return;
    }
    if (!event) return; // a stray print from a library; the protocol lines are the JSON ones
    sawProtocolLine = true;
    if (event.event === 'error') error = { message: event.message, kind: event.kind };
    // Events are handled one at a time, in order (checkpoint uploads must not overlap or reorder).
    const parsed = event;
    pending = pending.then(async () => {
      if (eventFailure) return;
      try {
        await run.onEvent(parsed);
      } catch (err) {
        eventFailure = err;
        killGroup('SIGKILL');
      }
    });
  });

  const ctx = activityContext();
  let hung = false;
  const ticker = setInterval(() => {
    run.heartbeat?.();
    if (run.progressTimeoutMs !== undefined && Date.now() - lastLine > run.progressTimeoutMs) {
      hung = true;
      killGroup('SIGKILL');
    }
  }, 5_000);
  const deadline = run.timeoutMs === undefined ? undefined : setTimeout(() => killGroup('SIGKILL'), run.timeoutMs);

  let cancelled = false;
  try {
    const outcome = await Promise.race([exited, ...(ctx ? [ctx.cancelled.catch((err) => Promise.reject(err))] : [])]);
    await pending;
    if (eventFailure) throw eventFailure;
    // `hung`: killed for printing nothing for progressTimeoutMs; `stderrTail`: its last 40 lines of stderr.
    return { ...outcome, stderrTail, sawProtocolLine, hung, error };
  } catch (err) {
    cancelled = err instanceof CancelledFailure;
    throw err;
  } finally {
    clearInterval(ticker);
    clearTimeout(deadline);
    if (child.pid && child.exitCode === null && child.signalCode === null) {
      // SIGTERM first: the trainer saves a resumable checkpoint when it can.
      await endGroup(child.pid, exited, cancelled ? (run.graceMs ?? 10_000) : 2_000);
      // A checkpoint saved on SIGTERM is uploaded before the activity ends, so a cancelled run resumes from it and
      // no upload outlives the attempt (the activity keeps heartbeating meanwhile).
      await pending;
    }
    // Anything the trainer itself started dies with the group.
    killGroup('SIGKILL');
  }
}

/**
 * Ends the group `pgid` leads, for the trainer and the serving command alike: SIGTERM first, then SIGKILL for the
 * whole group once its leader has `exited` or `graceMs` has passed.
 */
export async function endGroup(pgid: number, exited: Promise<unknown>, graceMs: number): Promise<void> {
  signalGroup(pgid, 'SIGTERM');
  // An unref'd timer: a leader that exits at once leaves nothing that holds the process open.
  await Promise.race([exited.catch(() => undefined), sleep(graceMs, undefined, { ref: false })]);
  signalGroup(pgid, 'SIGKILL');
  await exited.catch(() => undefined);
}

/** Signals every process of the group `pgid` leads (0: only asks); false when none is left to signal. */
export function signalGroup(pgid: number | undefined, signal: NodeJS.Signals | 0): boolean {
  try {
    if (pgid === undefined) return false;
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // already gone
  }
}

/**
 * The environment of every trainer process. The trainer never talks to the store or an LLM endpoint (the activity
 * does), so it gets none of their secrets; the hub stays offline.
 */
export const trainerEnv = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(Object.entries(env).filter(([k]) => !/KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL/i.test(k))),
  PYTHONUNBUFFERED: '1',
  HF_HUB_OFFLINE: '1',
});

/** A Python that cannot even import the trainer package: every retry would fail the same way. */
export function missingPackage(
  python: string,
  module: string,
  stderr: readonly string[],
): WorkerMisconfiguredError | undefined {
  const line = stderr.find((l) => l.includes('No module named'));
  if (!line) return undefined;
  return new WorkerMisconfiguredError(
    `${python} cannot run ${module} (${line.trim()}): run scripts/setup.sh, or point PIFT_PYTHON at a Python ` +
      'with the trainer package installed',
    'PIFT_PYTHON',
    `${python} -m ${module}`,
  );
}

/**
 * Runs a short-lived trainer module (`pift.check_model`, `pift.fetch_dataset`) to its end, bounded by `timeoutMs`,
 * and returns its `ready` event. Unlike training, these need no heartbeats or checkpoints, just the outcome. A refusal
 * (exit 65) is bad input naming `field` (input.training.maxLength where the trainer names that); `explain` may name
 * the cause of a refusal or a crash better; a crash or a timeout is an Error, retried, saying the module's last line.
 */
export async function runModule<M extends TrainerModule, E extends TrainerEvent<M>['event']>(
  deps: { python: string; workDir: string },
  module: M,
  configPath: string,
  o: {
    env: NodeJS.ProcessEnv;
    timeoutMs: number;
    /** What the module does, for messages: 'model check'. */
    what: string;
    field: string;
    ready: E;
    explain?: (said: string) => Error | undefined;
  },
): Promise<Extract<TrainerEvent<M>, { event: E }>> {
  const events: Array<TrainerEvent<M>> = [];
  const stderr: string[] = [];
  const exit = await watchTrainer({
    python: deps.python,
    module,
    configPath,
    cwd: deps.workDir,
    env: o.env,
    timeoutMs: o.timeoutMs,
    onEvent: (e) => void events.push(e),
    // All of it (a hub failure names its cause early in a chained traceback), up to a long traceback's length.
    onStderr: (line) => stderr.push(line) > 2_000 && stderr.shift(),
  });
  const ready = events.find((e): e is Extract<TrainerEvent<M>, { event: E }> => e.event === o.ready);
  if (exit.code === 0 && ready) return ready;
  if (exit.code === EXIT_DATA_ERROR) {
    const raw = exit.error?.message ?? `the trainer refused the ${o.what}`;
    // The trainer names its own config field; the user knows it by the input setting.
    const field = /field "(max_length|input\.training\.maxLength)"/.test(raw) ? 'input.training.maxLength' : o.field;
    const message = raw.replace(/^field "[^"]+": /, '');
    throw o.explain?.(message) ?? badSetting(field, message);
  }
  const failure = missingPackage(deps.python, module, stderr) ?? o.explain?.(stderr.join('\n'));
  if (failure) throw failure;
  const why = exit.code === null ? `was killed after ${o.timeoutMs} ms` : `exited with code ${exit.code}`;
  // Its last line (readline counts a progress bar's carriage returns as line ends), at most 300 characters.
  const last = stderr.map((l) => l.trim()).findLast(Boolean) ?? '';
  throw new Error(`${o.what} ${why}: ${exit.error?.message ?? last.slice(0, 300)}`);
}
