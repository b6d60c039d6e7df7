import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { after, before, describe, it } from 'mocha';
import { createCpuActivities } from '../activities/cpu';
import { depsFromEnv } from '../activities/deps';
import { diskFullFailure, runTrainerProcess, type TrainerModule } from '../activities/python/trainer-process';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import { FailureType, WorkerMisconfiguredError, withTypedFailures } from '../common/failures';
import { LineWriter } from '../activities/rows/row-file';
import { openObject, openStore } from '../store';
import { outageDefaults } from '../store/outage';
import type { ScoreResult } from '../activities/types';
import { startFakeOpenAI, type FakeOpenAI } from './helpers/fake-openai';
import { freePorts } from './helpers/ports';
import { startS3Server, type S3Server } from './helpers/s3-server';

const DEMO = resolve(__dirname, '..', 'data', 'demo', 'train.jsonl');
const FAST_MS = 30_000;

type Activities = ReturnType<typeof createCpuActivities>;
type Cfg = ReturnType<typeof resolvePipelineInput>;

/** Runs one CPU activity once, as a worker would, and returns the typed failure it ends in and how long that took. */
async function activityFails(
  env: NodeJS.ProcessEnv,
  input: { dataset: string; store: string; scorer?: Record<string, unknown> },
  call: (activities: Activities, cfg: Cfg) => Promise<unknown>,
): Promise<{ failure: ApplicationFailure; ms: number }> {
  const cfg = resolvePipelineInput({ ...input, runId: `fail-${randomBytes(4).toString('hex')}` }, 'wf', env);
  const activities = createCpuActivities({ ...depsFromEnv(env), env });
  const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  const started = Date.now();
  try {
    await mock.run(() => call(activities, cfg));
  } catch (err) {
    assert.ok(err instanceof ApplicationFailure, `not a typed failure: ${String(err)}`);
    return { failure: err, ms: Date.now() - started };
  }
  throw new Error('the activity succeeded');
}

/** The scoring activity: the first step that touches the store, the dataset and the LLM. */
const scoreFails = (env: NodeJS.ProcessEnv, input: Parameters<typeof activityFails>[1]) =>
  activityFails(env, input, (a, cfg) =>
    a.scoreDifficulty({
      runId: cfg.runId,
      store: cfg.store,
      dataset: cfg.dataset,
      datasetFormat: cfg.datasetFormat,
      scorer: cfg.scorer,
    }),
  );

/** The preflight activity: where the setup is first checked, failing fast, as the run's first step would. */
const preflightFails = (env: NodeJS.ProcessEnv, input: Parameters<typeof activityFails>[1]) =>
  activityFails(env, input, (a, cfg) => a.preflight(cfg));

/** Resolves at the first heartbeat of `mock` whose details say it waits for the store. */
function waitingHeartbeat(mock: MockActivityEnvironment): Promise<unknown> {
  return new Promise((resolve) =>
    mock.on('heartbeat', (details: unknown) => {
      if (JSON.stringify(details ?? null).includes('waitingFor')) resolve(details);
    }),
  );
}

function assertFails(
  { failure, ms }: { failure: ApplicationFailure; ms: number },
  type: string,
  names: RegExp[],
  secrets: string[] = [],
) {
  assert.equal(failure.type, type, failure.message);
  assert.equal(failure.nonRetryable, true);
  for (const name of names) assert.match(failure.message, name);
  for (const secret of secrets) assert.ok(!failure.message.includes(secret), 'the message leaks a secret');
  assert.ok(ms < FAST_MS, `took ${ms} ms`);
}

describe('failures name what to fix, on the first attempt', function () {
  this.timeout(120_000);
  let s3: S3Server;
  let scratch: string;
  let localStore: string;

  // The preflight's probe of an endpoint that never answered, shortened from its 10 s: these tests check what it
  // concludes, not how long it tries.
  const probeMs = outageDefaults.probeMs;
  before(async () => {
    (outageDefaults as { probeMs: number }).probeMs = 1_000;
    s3 = await startS3Server();
    scratch = mkdtempSync(join(tmpdir(), 'pift-failures-'));
    localStore = pathToFileURL(join(scratch, 'store')).href;
    await openStore(`s3://${s3.bucket}/data`, s3.env).putFile('train.jsonl', DEMO);
  });
  after(async () => {
    (outageDefaults as { probeMs: number }).probeMs = probeMs;
    await s3?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  const offline = { kind: 'offline' };
  // Local stores and datasets of these tests live under the scratch folder and the repo's data folder.
  const workEnv = () => ({
    PIFT_WORKDIR: join(scratch, 'work'),
    PIFT_FILE_ROOTS: [scratch, dirname(DEMO)].join(delimiter),
  });

  it('a gs:// store is bad input naming input.store', async () => {
    const r = await scoreFails(workEnv(), { dataset: DEMO, store: 'gs://bucket/runs', scorer: offline });
    assertFails(r, FailureType.BadInput, [/input\.store/, /PIFT_STORE/, /gs:\/\//]);
  });

  it('wrong S3 credentials are a worker misconfiguration naming the keys and the endpoint, never the secret', async () => {
    const env = { ...workEnv(), ...s3.env, AWS_SECRET_ACCESS_KEY: 'not-the-secret-123' };
    const r = await scoreFails(env, {
      dataset: `s3://${s3.bucket}/data/train.jsonl`,
      store: localStore,
      scorer: offline,
    });
    assertFails(
      r,
      FailureType.WorkerMisconfigured,
      [/AWS_ACCESS_KEY_ID/, /AWS_SECRET_ACCESS_KEY/, /PIFT_S3_ENDPOINT/, new RegExp(s3.endpoint)],
      ['not-the-secret-123', s3.secretAccessKey],
    );
  });

  it('a missing dataset bucket is bad input naming input.dataset', async () => {
    const env = { ...workEnv(), ...s3.env };
    const r = await scoreFails(env, {
      dataset: 's3://pift-no-such-bucket/train.jsonl',
      store: localStore,
      scorer: offline,
    });
    assertFails(r, FailureType.BadInput, [/input\.dataset/, /pift-no-such-bucket/, /does not exist/]);
  });

  it('a dataset URI naming a folder is bad input naming input.dataset', async () => {
    const env = { ...workEnv(), ...s3.env };
    const r = await scoreFails(env, { dataset: `s3://${s3.bucket}/data/`, store: localStore, scorer: offline });
    assertFails(r, FailureType.BadInput, [/input\.dataset/, /names a folder/]);
  });

  it('at preflight, an S3 endpoint that never answered is a misconfiguration naming PIFT_S3_ENDPOINT', async () => {
    const [port] = await freePorts(1);
    const env = { ...workEnv(), ...s3.env, PIFT_S3_ENDPOINT: `http://127.0.0.1:${port}` };
    const r = await preflightFails(env, {
      dataset: `s3://${s3.bucket}/data/train.jsonl`,
      store: localStore,
      scorer: offline,
    });
    assertFails(r, FailureType.WorkerMisconfigured, [/PIFT_S3_ENDPOINT/, new RegExp(`127\\.0\\.0\\.1:${port}`)]);
  });

  it('an S3 endpoint speaking plain HTTP to an https:// setting is a misconfiguration, at once, in every step', async () => {
    const env = { ...workEnv(), ...s3.env, PIFT_S3_ENDPOINT: s3.endpoint.replace(/^http:/, 'https:') };
    const r = await scoreFails(env, {
      dataset: `s3://${s3.bucket}/data/train.jsonl`,
      store: localStore,
      scorer: offline,
    });
    assertFails(r, FailureType.WorkerMisconfigured, [/PIFT_S3_ENDPOINT/, /TLS/]);
  });

  describe('the LLM endpoint', () => {
    let llm: FakeOpenAI;
    before(async () => (llm = await startFakeOpenAI({ apiKey: 'sk-right' })));
    after(() => llm?.stop());

    it('unreachable at preflight: a misconfiguration naming PIFT_OPENAI_BASE_URL and the URL', async () => {
      const [port] = await freePorts(1);
      const url = `http://127.0.0.1:${port}/v1`;
      const env = { ...workEnv(), PIFT_OPENAI_BASE_URL: url, OPENAI_API_KEY: 'sk-right' };
      const r = await preflightFails(env, { dataset: DEMO, store: localStore, scorer: { kind: 'openai' } });
      assertFails(r, FailureType.WorkerMisconfigured, [/PIFT_OPENAI_BASE_URL/, new RegExp(url.replace(/\./g, '\\.'))]);
    });

    it('https:// against a plain HTTP endpoint: a misconfiguration naming PIFT_OPENAI_BASE_URL, at preflight', async () => {
      const url = llm.baseURL.replace(/^http:/, 'https:');
      const env = { ...workEnv(), PIFT_OPENAI_BASE_URL: url, OPENAI_API_KEY: 'sk-right' };
      const r = await preflightFails(env, { dataset: DEMO, store: localStore, scorer: { kind: 'openai' } });
      assertFails(r, FailureType.WorkerMisconfigured, [/PIFT_OPENAI_BASE_URL/, /TLS/]);
      assert.ok(r.ms < 5_000, `took ${r.ms} ms`);
    });

    it('refusing the key: a misconfiguration naming OPENAI_API_KEY, never the key', async () => {
      const env = { ...workEnv(), PIFT_OPENAI_BASE_URL: llm.baseURL, OPENAI_API_KEY: 'sk-wrong-4242' };
      const r = await scoreFails(env, { dataset: DEMO, store: localStore, scorer: { kind: 'openai' } });
      assertFails(r, FailureType.WorkerMisconfigured, [/OPENAI_API_KEY/, /HTTP 401/], ['sk-wrong-4242']);
    });
  });

  it('a trainer that reports a full disk itself (exit 74 or a disk_full event) names PIFT_WORKDIR', () => {
    assert.equal(diskFullFailure(74, undefined, '', '/w')?.setting, 'PIFT_WORKDIR');
    assert.equal(diskFullFailure(1, 'disk_full', 'could not save', '/w')?.setting, 'PIFT_WORKDIR');
    assert.match(
      diskFullFailure(1, undefined, 'RuntimeError: [enforce fail] unexpected pos 128', '/w')!.message,
      /scratch space full/,
    );
    assert.equal(diskFullFailure(1, undefined, 'CUDA out of memory', '/w'), undefined);
  });

  describe('a full disk', function () {
    let small: string;
    before(function () {
      small = join(scratch, 'small');
      mkdirSync(small);
      try {
        // A real full file system: a 64 KiB tmpfs (needs root, or a user namespace's root).
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', small], { stdio: 'ignore' });
      } catch {
        this.skip();
      }
    });
    after(() => {
      if (small) execFileSync('umount', [small], { stdio: 'ignore' });
    });

    it('a full local store is a misconfiguration naming the store setting and its free space', async () => {
      writeFileSync(join(small, 'filler'), Buffer.alloc(60 * 1024));
      const r = await scoreFails(workEnv(), { dataset: DEMO, store: join(small, 'store'), scorer: offline });
      assertFails(r, FailureType.WorkerMisconfigured, [/scratch space full/, /input\.store/, /bytes free/]);
      rmSync(join(small, 'filler'));
    });

    it("the score step's local copy of the dataset in full scratch space names PIFT_WORKDIR", async () => {
      writeFileSync(join(small, 'filler'), Buffer.alloc(40 * 1024)); // leaves less than the 48 KiB dataset
      const env = { ...workEnv(), PIFT_WORKDIR: join(small, 'work') };
      const r = await scoreFails(env, { dataset: DEMO, store: localStore, scorer: offline });
      assertFails(r, FailureType.WorkerMisconfigured, [/scratch space full/, /PIFT_WORKDIR/]);
      rmSync(join(small, 'filler'));
    });

    it('a download into full scratch space names PIFT_WORKDIR', async () => {
      const store = openStore(`s3://${s3.bucket}/data`, s3.env);
      writeFileSync(join(small, 'filler'), Buffer.alloc(40 * 1024)); // leaves less than the 48 KiB dataset
      await assert.rejects(
        store.getFile('train.jsonl', join(small, 'work', 'train.jsonl')),
        (e) =>
          e instanceof WorkerMisconfiguredError && e.setting === 'PIFT_WORKDIR' && /scratch space full/.test(e.message),
      );
      rmSync(join(small, 'filler'));
    });

    it('a trainer that dies of a full disk names PIFT_WORKDIR', async () => {
      const script = join(scratch, 'fill.py');
      writeFileSync(script, 'import sys\nwith open(sys.argv[1], "wb") as f:\n    f.write(b"x" * (1 << 20))\n');
      const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
      const deps = depsFromEnv({});
      await assert.rejects(
        mock.run(runTrainerProcess, {
          python: deps.python,
          // A stand-in trainer module that only writes: the real one's disk-full path has its own Python tests.
          module: 'fill' as TrainerModule,
          configPath: join(small, 'checkpoint.bin'),
          cwd: small,
          env: { PYTHONPATH: scratch },
          onEvent: () => undefined,
          progressTimeoutMs: 60_000,
          heartbeat: () => undefined,
        }),
        (e) => e instanceof WorkerMisconfiguredError && e.setting === 'PIFT_WORKDIR' && /No space left/.test(e.message),
      );
    });
  });

  it('a store outage longer than the client retries is waited out inside one activity attempt', async () => {
    const store = openStore(`s3://${s3.bucket}/outage-${randomBytes(4).toString('hex')}`, {
      ...s3.env,
      PIFT_OUTAGE_TOLERANCE: '2m',
    });
    await store.put('before', 'stored before the outage');
    const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const heartbeats: unknown[] = [];
    mock.on('heartbeat', (d: unknown) => heartbeats.push(d));
    const waiting = waitingHeartbeat(mock);

    const restart = await s3.goDown();
    const work = mock.run(async () => {
      await store.put('during', 'written across the outage');
      return store.getText('before');
    });
    let settled = false;
    void work.finally(() => (settled = true)).catch(() => undefined);
    // The store heartbeats "waitingFor" once the client's own retries are spent: the outage outlasted them.
    await Promise.race([waiting, work]);
    assert.equal(settled, false, 'the operation did not wait for the store');
    assert.match(JSON.stringify(heartbeats.at(-1)), /waitingFor/);
    await restart();

    assert.equal(await work, 'stored before the outage');
    assert.equal(await store.getText('during'), 'written across the outage');
  });
  it('a step started while the S3 endpoint is down, never reached by this worker, waits until it is back', async () => {
    // A fresh server this process has never talked to: the worker restarted in the middle of an outage.
    const fresh = await startS3Server();
    try {
      const env = { ...workEnv(), ...fresh.env, PIFT_OUTAGE_TOLERANCE: '2m' };
      const cfg = resolvePipelineInput(
        { dataset: DEMO, store: `s3://${fresh.bucket}/runs`, scorer: offline, runId: 'restarted-in-outage' },
        'wf',
        env,
      );
      const activities = createCpuActivities({ ...depsFromEnv(env), env });
      // The log says when each attempt on the store failed: one failing after the preflight's probe time shows that
      // the step waits where the preflight would have given up.
      const failedAt: number[] = [];
      const logger = new DefaultLogger('WARN', (entry) => {
        if (entry.message.startsWith('waiting out')) failedAt.push(Date.now());
      });
      const mock = new MockActivityEnvironment(undefined, { logger });
      const restart = await fresh.goDown();
      const started = Date.now();
      const work = mock.run(activities.scoreDifficulty, {
        runId: cfg.runId,
        store: cfg.store,
        dataset: cfg.dataset,
        datasetFormat: cfg.datasetFormat,
        scorer: cfg.scorer,
      });
      let outcome: unknown;
      void work.then(
        () => (outcome = 'done'),
        (e: unknown) => (outcome = e),
      );
      while (outcome === undefined && !failedAt.some((t) => t - started > outageDefaults.probeMs)) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(outcome, undefined, `the step did not wait for the store: ${String(outcome)}`);
      await restart();
      const result = (await work) as ScoreResult;
      assert.ok(result.rows > 0);
      const scores = openObject(result.scoresUri, env);
      assert.ok(await scores.store.exists(scores.key), 'the scores were not written');
    } finally {
      await fresh.stop();
    }
  });

  it('a stream read that breaks mid-object resumes where it stopped once the store is back', async () => {
    const store = openStore(`s3://${s3.bucket}/stream-${randomBytes(4).toString('hex')}`, s3.env);
    const data = randomBytes(48 * 1024 * 1024);
    await store.put('big.bin', data);
    const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const read = await store.getStream('big.bin');
    const chunks: Buffer[] = [];
    let received = 0;
    let restart: (() => Promise<void>) | undefined;
    let restarted: Promise<void> | undefined;
    const waiting = waitingHeartbeat(mock);
    let finished: () => void = () => undefined;
    const reading = new Promise<void>((resolve) => (finished = resolve));
    await mock.run(async () => {
      for await (const chunk of read) {
        chunks.push(chunk as Buffer);
        received += (chunk as Buffer).length;
        if (!restart && received >= 1024 * 1024) {
          // The reader holds the stream while the server dies, then comes back to it.
          restart = await s3.goDown();
          // Back once the reader waits for the store (or has every byte already).
          restarted = Promise.race([waiting, reading]).then(restart);
        }
      }
      finished();
    });
    await restarted;
    assert.ok(restart, 'the object was read before the outage could start');
    assert.equal(Buffer.concat(chunks).equals(data), true, 'the bytes read differ from the object');
  });

  it('a cancelled activity stops waiting for the store at once', async () => {
    const store = openStore(`s3://${s3.bucket}/cancel`, { ...s3.env, PIFT_OUTAGE_TOLERANCE: '2m' });
    await store.put('x', 'x');
    const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const waiting = waitingHeartbeat(mock);
    const restart = await s3.goDown();
    try {
      const work = mock.run(() => store.getText('x'));
      const rejected = assert.rejects(work, (e) => /cancel/i.test(String((e as Error).name ?? e)));
      await waiting;
      const cancelled = Date.now();
      mock.cancel();
      await rejected;
      assert.ok(Date.now() - cancelled < 1_000, `took ${Date.now() - cancelled} ms to stop`);
    } finally {
      await restart();
    }
  });
});

describe('a full disk at any local write', () => {
  it('is a misconfiguration naming PIFT_WORKDIR, not an error retried ten times', async function () {
    if (process.platform !== 'linux') this.skip();
    // /dev/full answers every write with ENOSPC, as a full scratch disk does.
    const writer = await LineWriter.create('/dev/full');
    const failure = await withTypedFailures(async () => {
      await writer.write(Buffer.from('x\n'));
    }).catch((err: unknown) => err);
    await writer.close().catch(() => undefined);
    assert.ok(failure instanceof ApplicationFailure, String(failure));
    assert.equal(failure.type, FailureType.WorkerMisconfigured);
    assert.equal(failure.nonRetryable, true);
    assert.match(failure.message, /^scratch space full: no space left on the device \(write\); .*PIFT_WORKDIR/);
  });
});
