import { CreateBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, promises as fs, statSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { onGlobalTeardown } from '../hooks';
import { freePorts } from './ports';

/** A throwaway SeaweedFS S3 endpoint on loopback, authenticated with its own keys. */
export interface S3Server {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** What a child process needs in its environment to reach the bucket through `openStore`. */
  env: Record<string, string>;
  stop(): Promise<void>;
  /**
   * An outage: kills the server (as abruptly as a crash) keeping its data, so requests are refused, and returns a
   * function that starts it again on the same ports and waits until it serves.
   */
  goDown(): Promise<() => Promise<void>>;
}

const READY_TIMEOUT_MS = 60_000;
const REGION = 'us-east-1';
/** Port collisions with other processes are possible between picking a port and binding it; retry on those. */
const START_ATTEMPTS = 3;
const LOG_LINES_KEPT = 40;

/**
 * Watchdog around weed: stdin is a pipe from this Node process, so EOF means it is gone (even killed with SIGKILL)
 * and the server is killed with it instead of living on after a crashed test run. (Background jobs of a
 * non-interactive shell read /dev/null, hence the copy of stdin on fd 3.)
 */
const WATCHDOG =
  'exec 3<&0; "$0" "$@" </dev/null 3<&- & weed=$!; (read -r _ <&3; kill -9 "$weed" 2>/dev/null) & wait "$weed"';

let shared: Promise<S3Server> | undefined;

/** One server per test process, started on first use and stopped once after the last test. */
export function sharedS3(): Promise<S3Server> {
  if (!shared) {
    shared = startS3Server();
    const started = shared;
    onGlobalTeardown(async () => (await started.catch(() => undefined))?.stop());
  }
  return shared;
}

export async function startS3Server(): Promise<S3Server> {
  const weed = findWeedBinary();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(weed);
    } catch (err) {
      if (!(err instanceof ExitedEarlyError) || attempt >= START_ATTEMPTS) {
        throw err;
      }
    }
  }
}

class ExitedEarlyError extends Error {}

async function startOnce(weed: string): Promise<S3Server> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pift-s3-'));
  const accessKeyId = `pift${randomBytes(6).toString('hex')}`;
  const secretAccessKey = randomBytes(18).toString('base64url');
  const bucket = 'pift-test';
  await fs.mkdir(path.join(dir, 'data'));
  await fs.mkdir(path.join(dir, 'log'));
  await fs.writeFile(
    path.join(dir, 's3.json'),
    JSON.stringify({
      identities: [
        {
          name: 'pift',
          credentials: [{ accessKey: accessKeyId, secretKey: secretAccessKey }],
          actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'],
        },
      ],
    }),
  );

  const [master, masterGrpc, volume, volumeGrpc, filer, filerGrpc, s3, s3Grpc] = await freePorts(8);
  // mini's maintenance worker dials the admin server at its HTTP port + 10000, whatever -admin.port.grpc says.
  const [admin, adminGrpc] = await freePortPair(10_000);
  const ports = [master, masterGrpc, volume, volumeGrpc, filer, filerGrpc, s3, s3Grpc, admin, adminGrpc];
  const args = [
    `-logdir=${path.join(dir, 'log')}`,
    'mini',
    `-dir=${path.join(dir, 'data')}`,
    '-ip=127.0.0.1',
    '-ip.bind=127.0.0.1',
    `-master.port=${master}`,
    `-master.port.grpc=${masterGrpc}`,
    `-volume.port=${volume}`,
    `-volume.port.grpc=${volumeGrpc}`,
    `-filer.port=${filer}`,
    `-filer.port.grpc=${filerGrpc}`,
    `-s3.port=${s3}`,
    `-s3.port.grpc=${s3Grpc}`,
    `-admin.port=${admin}`,
    `-admin.port.grpc=${adminGrpc}`,
    '-s3.port.iceberg=0',
    '-s3.port.lance=0',
    '-webdav=false',
    '-admin.ui=false',
    '-master.telemetry=false',
    // Small volumes keep the memory-mapped index and disk use low; tests never store much.
    '-master.volumeSizeLimitMB=64',
    `-s3.config=${path.join(dir, 's3.json')}`,
  ];
  const endpoint = `http://127.0.0.1:${s3}`;
  let proc = launch(weed, args, dir);
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await kill(proc);
      await fs.rm(dir, { recursive: true, force: true });
      await removeUnixSockets(ports);
    })());

  const ready = async () => {
    const client = new S3Client({
      endpoint,
      region: REGION,
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
      maxAttempts: 1,
    });
    try {
      await waitUntilReady(client, proc.exited, () => describeFailure(proc.output, dir));
      return client;
    } catch (err) {
      client.destroy();
      throw err;
    }
  };
  try {
    const client = await ready();
    try {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
    } finally {
      client.destroy();
    }
  } catch (err) {
    await stop();
    throw err;
  }

  const goDown = async () => {
    await kill(proc);
    await removeUnixSockets(ports);
    return async () => {
      proc = launch(weed, args, dir);
      (await ready()).destroy();
    };
  };

  return {
    endpoint,
    bucket,
    accessKeyId,
    secretAccessKey,
    region: REGION,
    env: {
      PIFT_S3_ENDPOINT: endpoint,
      PIFT_S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_REGION: REGION,
    },
    stop,
    goDown,
  };
}

interface WeedProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  output: LogTail;
}

function launch(weed: string, args: string[], dir: string): WeedProcess {
  const child = spawn('/bin/sh', ['-c', WATCHDOG, weed, ...args], {
    cwd: dir,
    detached: true, // its own process group, so stop() can kill the shell, the watchdog and weed together
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', HOME: dir, TMPDIR: dir },
  });
  const output = new LogTail(LOG_LINES_KEPT);
  child.stdout?.on('data', (chunk: Buffer) => output.add(chunk));
  child.stderr?.on('data', (chunk: Buffer) => output.add(chunk));
  // A forgotten stop() must not keep the test process alive.
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    (stream as unknown as net.Socket | null)?.unref();
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output };
}

/** Ready means a signed S3 request succeeds, not merely that the port is open. */
async function waitUntilReady(
  client: S3Client,
  exited: Promise<number | null>,
  describe: () => Promise<string>,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) {
      throw new ExitedEarlyError(`SeaweedFS exited with code ${exitCode} while starting\n${await describe()}`);
    }
    try {
      await client.send(new ListBucketsCommand({}), { abortSignal: AbortSignal.timeout(2_000) });
      return;
    } catch (err) {
      lastError = err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(
    `SeaweedFS S3 was not ready within ${READY_TIMEOUT_MS / 1000} s (last error: ${String(lastError)})\n` +
      (await describe()),
  );
}

async function kill({ child, exited }: WeedProcess): Promise<void> {
  // Nothing is kept that a graceful shutdown (several seconds) would save: the data directory is durable enough for
  // a restart, and a crash is what outages look like. Closing stdin makes the watchdog SIGKILL weed, and the shell
  // reaps it and exits. Killing the whole group is the fallback.
  child.ref(); // keep the event loop alive until the process is reaped
  child.stdin?.end();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), 3_000)));
  if ((await Promise.race([exited, timedOut])) === 'timeout' && child.pid !== undefined) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await exited;
  }
  clearTimeout(timer);
}

/** weed puts one Unix socket per service in /tmp, named by port, whatever TMPDIR says; a killed weed leaves them. */
async function removeUnixSockets(ports: number[]): Promise<void> {
  const names = await fs.readdir('/tmp').catch(() => [] as string[]);
  const ours = new Set(ports.map(String));
  await Promise.all(
    names
      .filter((name) => ours.has(/^seaweedfs-[a-z0-9-]+?-(\d+)\.sock$/.exec(name)?.[1] ?? ''))
      .map((name) => fs.rm(path.join('/tmp', name), { force: true })),
  );
}

async function describeFailure(output: LogTail, dir: string): Promise<string> {
  const info = await fs.readFile(path.join(dir, 'log', 'weed.INFO'), 'utf8').catch(() => '');
  const infoTail = info.split('\n').filter(Boolean).slice(-LOG_LINES_KEPT).join('\n');
  return `--- weed output ---\n${output.text()}\n--- weed.INFO ---\n${infoTail}`;
}

/** Two free ports `gap` apart. */
async function freePortPair(gap: number): Promise<[number, number]> {
  for (let tries = 0; tries < 50; tries++) {
    const [low] = await freePorts(1);
    if (low + gap > 65_535) {
      continue;
    }
    if (await isFree(low + gap)) {
      return [low, low + gap];
    }
  }
  throw new Error(`no two free loopback ports ${gap} apart`);
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export function findWeedBinary(env: NodeJS.ProcessEnv = process.env): string {
  const repoRoot = path.resolve(__dirname, '..', '..');
  const candidates = [
    env.PIFT_WEED_BIN ? path.resolve(env.PIFT_WEED_BIN) : undefined,
    path.join(repoRoot, '.venv', 'bin', 'weed'),
    ...(env.PATH ?? '')
      .split(path.delimiter)
      .filter(Boolean)
      .map((dir) => path.resolve(dir, 'weed')),
  ];
  for (const candidate of candidates) {
    if (candidate && isExecutable(candidate)) {
      return candidate;
    }
  }
  throw new Error(
    'SeaweedFS binary `weed` not found (looked at $PIFT_WEED_BIN, .venv/bin/weed and $PATH); ' +
      'run `npm test` or `bash scripts/setup.sh` to install it',
  );
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The last few lines a process printed, for error messages. */
class LogTail {
  private lines: string[] = [];
  private partial = '';
  constructor(private readonly max: number) {}

  add(chunk: Buffer): void {
    const parts = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = parts.pop() ?? '';
    this.lines.push(...parts);
    if (this.lines.length > this.max) {
      this.lines = this.lines.slice(-this.max);
    }
  }

  text(): string {
    return [...this.lines, this.partial].filter(Boolean).join('\n');
  }
}
