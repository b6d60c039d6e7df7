import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { depsFromEnv } from '../../activities/deps';
import { openStore, type ObjectStore } from '../../store';
import { createCpuWorkers } from '../../workers/create-workers';
import { makeCurrentVersion, workerVersion } from '../../workers/versioning';
import { onGlobalTeardown } from '../hooks';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai';
import { sharedS3, type S3Server } from './s3-server';
import { repoRoot, sharedTemporal } from './temporal';
import { workflowBundle } from './workflow-bundle';

export interface Harness {
  temporal: TestWorkflowEnvironment;
  s3: S3Server;
  llm: FakeOpenAI;
  store: ObjectStore;
  storeUri: string;
  cpuQueue: string;
  gpuQueue: string;
  /** The env of a worker process: S3 endpoint and keys, LLM endpoint and key. */
  workerEnv: NodeJS.ProcessEnv;
  startGpuWorker(): Promise<ChildProcess>;
  upload(key: string, text: string): Promise<string>;
}

/**
 * Everything a pipeline test needs, all real and on loopback: the Temporal dev server, SeaweedFS, an
 * OpenAI-compatible server the test controls, an in-process CPU worker and GPU workers as child processes
 * (so a test can SIGKILL one mid-training).
 */
export async function startHarness(options: { workerEnv?: NodeJS.ProcessEnv } = {}): Promise<Harness> {
  const [temporal, s3, llm] = await Promise.all([
    sharedTemporal(),
    sharedS3(),
    startFakeOpenAI({ apiKey: `sk-test-${randomUUID()}` }),
  ]);
  onGlobalTeardown(() => llm.stop());
  const cpuQueue = `cpu-${randomUUID()}`;
  const gpuQueue = `gpu-${randomUUID()}`;
  const workDir = mkdtempSync(join(tmpdir(), 'pift-test-'));
  const workerEnv: NodeJS.ProcessEnv = {
    ...process.env,
    ...s3.env,
    PIFT_OPENAI_BASE_URL: llm.baseURL,
    OPENAI_API_KEY: llm.apiKey,
    PIFT_WORKDIR: workDir,
    // The runs read and write S3 only; local files are allowed in the scratch folder alone.
    PIFT_FILE_ROOTS: workDir,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: temporal.namespace ?? 'default',
    PIFT_GPU_TASK_QUEUE: gpuQueue,
    TS_NODE_TRANSPILE_ONLY: 'true',
    ...options.workerEnv,
  };
  // The CPU worker process's workers: the workflow and CPU activities, and the shard worker. Its runs are pinned to
  // its version, as with `npm run worker:cpu`; a deployment of its own keeps the test files' runs apart.
  const bundle = await workflowBundle();
  const version = workerVersion({ PIFT_DEPLOYMENT_NAME: cpuQueue }, bundle.code);
  const cpuWorkers: Worker[] = await createCpuWorkers({
    connection: temporal.nativeConnection,
    namespace: temporal.namespace ?? 'default',
    taskQueue: cpuQueue,
    deps: { ...depsFromEnv(workerEnv), env: workerEnv },
    workflowBundle: bundle,
    version,
  });
  const running = Promise.all(cpuWorkers.map((w) => w.run()));
  await makeCurrentVersion(temporal.connection, temporal.namespace ?? 'default', version);
  onGlobalTeardown(async () => {
    for (const w of cpuWorkers) w.shutdown();
    await running;
  });

  const gpuWorkers: ChildProcess[] = [];
  onGlobalTeardown(async () => {
    for (const w of gpuWorkers) if (w.exitCode === null) w.kill('SIGKILL');
  });
  const storeUri = `s3://${s3.bucket}/runs`;
  const store = openStore(storeUri, workerEnv);
  const data = openStore(`s3://${s3.bucket}/datasets`, workerEnv);
  return {
    temporal,
    s3,
    llm,
    store,
    storeUri,
    cpuQueue,
    gpuQueue,
    workerEnv,
    async startGpuWorker() {
      const child = spawn(process.execPath, ['-r', 'ts-node/register', join(repoRoot, 'workers', 'gpu.ts')], {
        cwd: repoRoot,
        env: workerEnv,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      gpuWorkers.push(child);
      await new Promise<void>((resolve, reject) => {
        const lines: string[] = [];
        createInterface({ input: child.stderr! }).on('line', (line) => {
          lines.push(line);
          if (line.includes('gpu worker polling')) resolve();
        });
        child.once('exit', (code) =>
          reject(new Error(`gpu worker exited with ${code}:\n${lines.slice(-20).join('\n')}`)),
        );
      });
      return child;
    },
    async upload(key: string, text: string) {
      await data.put(key, text);
      return data.uriFor(key);
    },
  };
}

/** The demo dataset's rows: `[{ id, family, level, instruction, input, output }]`. */
export function demoRows(file: 'train' | 'heldout'): Array<Record<string, string>> {
  return readFileSync(join(repoRoot, 'data', 'demo', `${file}.jsonl`), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** `perFamily` training rows of each of the 12 demo families (4 easy, 4 medium, 4 hard), in file order. */
export function balancedDemo(perFamily: number): Array<Record<string, string>> {
  const seen = new Map<string, number>();
  return demoRows('train').filter((r) => {
    const n = seen.get(r.family) ?? 0;
    seen.set(r.family, n + 1);
    return n < perFamily;
  });
}
