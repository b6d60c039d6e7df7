import { Context } from '@temporalio/activity';
import OpenAI, { APIError } from 'openai';
import type { Model } from 'openai/resources/models';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { TransientInfraError, WorkerMisconfiguredError } from '../../common/failures';
import { endGroup, signalGroup, trainerEnv } from '../python/trainer-process';

/** The worker's variable holding the command that serves one model (`{model}`, `{port}`, `{name}`, `{python}`). */
export const SERVE_COMMAND_SETTING = 'PIFT_SERVE_COMMAND';

/** A server this activity started and owns: its endpoint, and how to end its whole process group. */
export interface ServedModel {
  /** Its client: no key (the server listens on loopback only). */
  client: OpenAI;
  /** The model name requests give (the server's `--served-model-name`). */
  name: string;
  /** Who owns the model by `GET /v1/models` (`vllm`, `pift`), recorded with the answers. */
  server: string;
  /**
   * The precision the server decodes in, as far as it tells: its model listing's `dtype` (pift.serve), else a
   * downcast its log reports (vLLM: `Downcasting torch.float32 to torch.bfloat16`), else the command's `--dtype`.
   * Greedy answers differ from `pift.generate`'s where the precision differs (fp32 on a CPU).
   */
  dtype: string;
  /** The group leader's pid, which is also the process group id. */
  pid: number;
  stop: () => Promise<void>;
  /** Why a request failed, in the worker's terms: a refusal names the command, a dead server says what it printed. */
  requestFailure: (promptId: string | number, err: unknown) => Error;
}

export interface ServeOptions {
  /** `PIFT_SERVE_COMMAND` with its placeholders. */
  command: string;
  /** What the server loads: the model's local directory (or a builtin name, which only `pift.serve` knows). */
  modelPath: string;
  name: string;
  python: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  startTimeoutMs: number;
  /** How the timeout reads in an error: the setting and its value. */
  startTimeoutText: string;
  /** How long one request to the started server may take (the step's progress timeout). */
  requestTimeoutMs: number;
  /** The dtype `pift.generate` decodes in here: a server saying it decodes in another fails (absent: any is taken). */
  dtype?: string;
  heartbeat: () => void;
}

/** What failures say was tried: never the command itself, which may carry a key. */
const TRIED = `the command in ${SERVE_COMMAND_SETTING}`;
const SECRET_LIKE = /api[_-]?key|secret|password|credential|\bhf_[A-Za-z0-9]{16,}|\bsk-[A-Za-z0-9]/i;

/** Single quotes for `sh`, so a path with spaces or quotes stays one word. */
const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

/** The worker's serving command; a run that asks for serving on a worker without one cannot go on. */
export function serveCommandFrom(env: NodeJS.ProcessEnv): string {
  const command = env[SERVE_COMMAND_SETTING]?.trim();
  if (!command) {
    throw new WorkerMisconfiguredError(
      `evaluation.serving is set but the GPU worker has no ${SERVE_COMMAND_SETTING}: set it to the command that ` +
        'serves one model, e.g. `vllm serve {model} --port {port} --served-model-name {name}` or ' +
        '`{python} -m pift.serve --model {model} --port {port} --served-model-name {name}`',
      SERVE_COMMAND_SETTING,
    );
  }
  return command;
}

/** A free loopback port for the server (taken back at once: only the server listens on it afterwards). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Starts the serving command in its own process group and waits until it lists the model. A watchdog in the same
 * group kills the group once this worker is gone, since a server outliving a SIGKILLed worker would hold its GPU.
 * Fails naming `PIFT_SERVE_COMMAND` when the server exits first or never becomes healthy; kills the group on any
 * failure and on cancellation.
 */
export async function startServer(opts: ServeOptions): Promise<ServedModel> {
  const port = await freePort();
  // The placeholders filled in, each value quoted for the shell.
  const values = { model: opts.modelPath, port: String(port), name: opts.name, python: opts.python };
  const command = opts.command.replace(/\{(model|port|name|python)\}/g, (_, k: keyof typeof values) =>
    shellQuote(values[k]),
  );
  const watchdog =
    '( while kill -0 "$PIFT_PARENT_PID" 2>/dev/null; do sleep 2; done; kill -KILL 0 ) </dev/null >/dev/null 2>&1 &';
  const child = spawn('/bin/sh', ['-c', `${watchdog}\n${command}`], {
    cwd: opts.cwd,
    // The serving command gets no store or endpoint secrets, as the trainer gets none.
    env: { ...trainerEnv(opts.env), PIFT_PARENT_PID: String(process.pid) },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined)
    throw new WorkerMisconfiguredError(`cannot start /bin/sh for ${SERVE_COMMAND_SETTING}`, SERVE_COMMAND_SETTING);
  const tail: string[] = [];
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => {
      // The tail goes into failure messages, and so into history: a server printing its arguments may print a key.
      tail.push(SECRET_LIKE.test(line) ? '[a line naming a key or token, left out]' : line);
      if (tail.length > 30) tail.shift();
    });
  }
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ?? `code ${code}`));
    child.once('error', (err) => resolve(err.message));
  });
  let gone = false;
  void exited.then(() => (gone = true));
  const stop = async () => {
    // The watchdog, and anything the server started, go with the group.
    await endGroup(pid, exited, 10_000);
    // The next model must find the GPU free: wait until the kernel has ended every process of the group.
    for (let waited = 0; groupAlive(pid) && waited < 10_000; waited += 100) await sleep(100);
  };

  const baseURL = `http://127.0.0.1:${port}/v1`;
  const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 2, timeout: opts.requestTimeoutMs });
  const said = () => (tail.length ? `; it said:\n${tail.slice(-15).join('\n')}` : '');
  const requestFailure = (promptId: string | number, err: unknown): Error => {
    const what = err instanceof Error ? err.message : String(err);
    if (gone) {
      return new Error(`the server of ${opts.name} (${SERVE_COMMAND_SETTING}) exited while answering${said()}`);
    }
    // The request itself is wrong for this server: the same prompt would be refused on every retry.
    if (err instanceof APIError && err.status !== undefined && [400, 404, 413, 422].includes(err.status)) {
      return new WorkerMisconfiguredError(
        `the server of ${opts.name} refused prompt ${JSON.stringify(promptId)} (HTTP ${err.status}: ${what}); ` +
          `check ${SERVE_COMMAND_SETTING}, e.g. that its maximum model length is at least evaluation.maxLength`,
        SERVE_COMMAND_SETTING,
        TRIED,
      );
    }
    return new Error(`the server of ${opts.name} did not answer prompt ${JSON.stringify(promptId)}: ${what}`);
  };
  const ctx = Context.current();
  const deadline = Date.now() + opts.startTimeoutMs;
  try {
    for (;;) {
      opts.heartbeat();
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
      if (gone) {
        throw new WorkerMisconfiguredError(
          `the serving command (${SERVE_COMMAND_SETTING}) exited with ${await exited} before serving ` +
            `${opts.modelPath}${said()}`,
          SERVE_COMMAND_SETTING,
          TRIED,
        );
      }
      const listed = await listedModel(client, opts.name);
      if (listed !== undefined) {
        const dtype = servedDtype(listed.dtype, tail, command);
        if (opts.dtype && otherDtype(dtype, opts.dtype)) {
          throw new WorkerMisconfiguredError(
            `the server of ${opts.name} decodes in ${dtype}, pift.generate in ${opts.dtype}, so their greedy ` +
              `answers would differ: give ${SERVE_COMMAND_SETTING} --dtype ${opts.dtype}, or set ` +
              'evaluation.serving.allowOtherDtype',
            SERVE_COMMAND_SETTING,
            TRIED,
          );
        }
        return { client, name: opts.name, server: listed.owner, dtype, pid, stop, requestFailure };
      }
      if (Date.now() > deadline) {
        // A loaded host may just be slow: retried like any blip, and the last attempt's message says what to check.
        throw new TransientInfraError(
          `the serving command (${SERVE_COMMAND_SETTING}) did not list model "${opts.name}" at GET ${baseURL}/models ` +
            `within ${opts.startTimeoutText}: check the command, or give a slow model more time${said()}`,
          SERVE_COMMAND_SETTING,
        );
      }
      await Promise.race([sleep(1_000), exited, ctx.cancelled.catch(() => undefined)]);
    }
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The model's `owned_by` (and `dtype`, where listed) once the server lists it; undefined while it is loading. */
async function listedModel(client: OpenAI, name: string): Promise<{ owner: string; dtype?: string } | undefined> {
  const listing = await client.models.list({ timeout: 5_000, maxRetries: 0 }).catch(() => undefined);
  const model = listing?.data.find((m) => m.id === name) as (Model & { dtype?: unknown }) | undefined;
  return (
    model && {
      owner: String(model.owned_by ?? 'unknown'),
      ...(typeof model.dtype === 'string' && { dtype: model.dtype }),
    }
  );
}

/** See ServedModel.dtype. */
export function servedDtype(listed: string | undefined, log: readonly string[], command: string): string {
  if (listed) return listed.replace(/^torch\./, '');
  for (const line of log) {
    const downcast = /Downcasting torch\.(\w+) to torch\.(\w+)/.exec(line);
    if (downcast) return `${downcast[2]} (the server's log: downcast from ${downcast[1]})`;
  }
  const flag = /--dtype[= ]+([\w.]+)/.exec(command);
  if (flag) return `${flag[1]} (${SERVE_COMMAND_SETTING} --dtype)`;
  return `unknown (the server does not say; give ${SERVE_COMMAND_SETTING} a --dtype)`;
}

/** True when the served dtype (servedDtype's text) names a precision, and not `wanted`; `auto` or unknown do not. */
export function otherDtype(served: string, wanted: string): boolean {
  const word = served.split(' ')[0];
  const dtype = ({ float: 'float32', half: 'float16' } as Record<string, string>)[word] ?? word; // vLLM's spellings
  return ['float32', 'float16', 'bfloat16'].includes(dtype) && dtype !== wanted;
}

/** True while any process of the group lives. */
export const groupAlive = (pgid: number): boolean => signalGroup(pgid, 0);
