import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { after, before, describe, it } from 'mocha';
import { WorkerMisconfiguredError } from '../common/failures';
import {
  parseTrainerEvent,
  runTrainerProcess,
  type TrainerEvent,
  type TrainerModule,
} from '../activities/python/trainer-process';

const repoRoot = resolve(__dirname, '..');
const venvPython = join(repoRoot, '.venv', 'bin', 'python');

describe('trainer process', () => {
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'pift-trainer-process-'));
  });
  after(() => rm(work, { recursive: true, force: true }));

  const run = (python: string, module: TrainerModule, config: object, processEnv: NodeJS.ProcessEnv = process.env) =>
    env.run(async (): Promise<TrainerEvent[]> => {
      const configPath = join(work, `${module}.json`);
      await writeFile(configPath, JSON.stringify(config));
      const events: TrainerEvent[] = [];
      await runTrainerProcess({
        python,
        module,
        configPath,
        cwd: work,
        env: processEnv,
        progressTimeoutMs: 110_000,
        heartbeat: () => undefined,
        onEvent: (e) => void events.push(e),
      });
      return events;
    });

  it('runs an entry module of the trainer package from a scratch directory', async () => {
    // An absolute PYTHONPATH stands in for the install that scripts/setup.sh makes; it changes nothing once installed.
    const events = await run(
      venvPython,
      'pift.check_model',
      { model_name_or_path: 'builtin:tiny-llama', max_length: 64 },
      { ...process.env, PYTHONPATH: join(repoRoot, 'trainer') },
    );
    assert.deepEqual(
      events.map((e) => [e.event, 'model_type' in e && e.model_type, 'eos_token' in e && e.eos_token]),
      [['model_ok', 'llama', '</s>']],
    );
  });

  it('names PIFT_PYTHON when the interpreter lacks the trainer package', async () => {
    // The venv's base interpreter: the same Python, without the venv's packages.
    const home = /^home\s*=\s*(.+)$/m.exec(await readFile(join(repoRoot, '.venv', 'pyvenv.cfg'), 'utf8'))![1].trim();
    const { PYTHONPATH: _ignored, ...withoutPath } = process.env;
    await assert.rejects(
      run(join(home, 'python3'), 'pift.train', {}, withoutPath),
      (err: unknown) =>
        err instanceof WorkerMisconfiguredError &&
        err.setting === 'PIFT_PYTHON' &&
        /cannot run pift\.train .*No module named/.test(err.message),
    );
  });

  it('reports a full scratch disk (exit 74) as a misconfiguration naming PIFT_WORKDIR', async () => {
    // Stands in for the trainer's side of the protocol, which trainer/tests/test_disk_full.py covers.
    const fake = join(work, 'fake-python');
    await writeFile(
      fake,
      '#!/bin/sh\necho \'{"event":"error","kind":"disk_full","message":"scratch space full while writing /w/ckpt"}\'\nexit 74\n',
    );
    await chmod(fake, 0o755);
    await assert.rejects(
      run(fake, 'pift.train', {}),
      (err: unknown) =>
        err instanceof WorkerMisconfiguredError &&
        err.setting === 'PIFT_WORKDIR' &&
        /scratch space full/.test(err.message) &&
        err.message.includes('scratch space full while writing /w/ckpt'),
    );
  });

  it('fails naming PIFT_PYTHON when a trainer writes a line outside the protocol, and kills it', async () => {
    // A trainer of another version: a progress line without the loss this worker reads.
    const fake = join(work, 'other-version-python');
    await writeFile(fake, '#!/bin/sh\necho \'{"event":"progress","step":1,"total_steps":2}\'\nexec sleep 60\n');
    await chmod(fake, 0o755);
    const started = Date.now();
    await assert.rejects(
      run(fake, 'pift.train', {}),
      (err: unknown) =>
        err instanceof WorkerMisconfiguredError &&
        err.setting === 'PIFT_PYTHON' &&
        /outside the trainer protocol .*loss/.test(err.message),
    );
    assert.ok(Date.now() - started < 30_000, 'the trainer was left running');
  });
});

describe('trainer protocol (schema/trainer-events.schema.json)', () => {
  it('reads each module’s events as typed, skips stray prints, and refuses another module’s events', () => {
    const line = '{"event":"progress","done":3,"total":8}';
    assert.deepEqual(parseTrainerEvent('pift.generate', line), { event: 'progress', done: 3, total: 8 });
    assert.equal(parseTrainerEvent('pift.generate', 'Loading checkpoint shards: 100%'), undefined);
    assert.throws(() => parseTrainerEvent('pift.train', line), WorkerMisconfiguredError);
    assert.throws(
      () => parseTrainerEvent('pift.train', '{"event":"error","kind":"oops","message":"m"}'),
      /outside the trainer protocol/,
    );
  });
});
