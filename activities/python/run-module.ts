import { execFile } from 'node:child_process';
import { WorkerMisconfiguredError } from '../../common/failures';
import { parseTrainerEvent, type TrainerEvent, type TrainerModule } from './trainer-process';

/** What a short-lived trainer module (`pift.check_model`, `pift.fetch_dataset`) left: its exit and protocol lines. */
export interface ModuleOutcome<M extends TrainerModule> {
  /** null when it was killed (its time limit). */
  code: number | null;
  /** Its stdout's JSON lines, in order. */
  events: Array<TrainerEvent<M>>;
  stderr: string;
}

/**
 * Runs `python -m MODULE CONFIG` to its end, bounded by `timeoutMs` (then SIGKILL). Unlike training, these need no
 * heartbeats or checkpoints, just the outcome; a python that cannot be started is the worker's misconfiguration.
 */
export async function runModule<M extends TrainerModule>(
  deps: { python: string; workDir: string },
  module: M,
  configPath: string,
  options: { env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<ModuleOutcome<M>> {
  const { code, stdout, stderr, spawnError } = await new Promise<{
    code: number | null;
    stdout: string;
    stderr: string;
    spawnError?: NodeJS.ErrnoException;
  }>((resolve) => {
    execFile(
      deps.python,
      ['-m', module, configPath],
      {
        cwd: deps.workDir,
        env: options.env,
        timeout: options.timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: 4 * 1024 * 1024,
      },
      (err, out, errText) => {
        const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null;
        if (e && typeof e.code === 'string') resolve({ code: null, stdout: out, stderr: errText, spawnError: e });
        else resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, stdout: out, stderr: errText });
      },
    );
  });
  if (spawnError) {
    throw new WorkerMisconfiguredError(
      `cannot start the trainer's python ${deps.python}: ${spawnError.code}`,
      'PIFT_PYTHON',
      `${deps.python} -m ${module}`,
    );
  }
  const events = stdout.split('\n').flatMap((l) => parseTrainerEvent(module, l) ?? []);
  return { code, events, stderr };
}
