import { badSetting } from '../../common/failures';
import {
  EXIT_DATA_ERROR,
  missingPackage,
  watchTrainer,
  type TrainerEvent,
  type TrainerModule,
} from './trainer-process';

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
