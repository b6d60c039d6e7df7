import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger } from '@temporalio/worker';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, it } from 'mocha';
import { createCpuActivities } from '../activities/cpu';
import { depsFromEnv } from '../activities/deps';
import { localModel } from '../activities/artifacts/hand-off';
import { DatasetRows } from '../activities/datasets/read-dataset';
import type { ScoreInput } from '../activities/types';
import type { PipelineInput } from '../common/settings/schema';
import { FailureType, InvalidDataError, WorkerMisconfiguredError } from '../common/failures';
import { workerDefaults } from '../activities/worker-defaults';
import { allowedLocation, fileRootsFromEnv, localPathOf } from '../store';

const CANARY = 'CANARY-7f3a9c41-do-not-leak';

/** An allowed folder and a folder beside it that is not, holding a secret in dataset form. */
function folders() {
  const base = realpathSync(mkdtempSync(join(tmpdir(), 'pift-roots-')));
  const allowed = join(base, 'allowed');
  const outside = join(base, 'outside');
  mkdirSync(allowed);
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret.jsonl'), JSON.stringify({ instruction: CANARY, output: CANARY }) + '\n');
  const deps = { ...depsFromEnv({ PIFT_FILE_ROOTS: allowed }), workDir: join(base, 'work') };
  return { base, allowed, outside, deps };
}

function scoreInput(allowed: string, dataset: string): ScoreInput {
  return {
    runId: 'r',
    store: pathToFileURL(join(allowed, 'store')).href,
    dataset,
    datasetFormat: 'auto',
    scorer: {
      kind: 'offline',
      concurrency: 1,
      parseRetries: 0,
      requestRetries: 0,
      timeoutSeconds: 1,
      maxFailedFraction: 0,
    },
  };
}

/** Runs the CPU worker's own scoreDifficulty activity and returns the failure it ends with. */
async function scoreFailure(deps: ReturnType<typeof folders>['deps'], input: ScoreInput): Promise<ApplicationFailure> {
  const activities = createCpuActivities(deps);
  try {
    await new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') }).run(
      activities.scoreDifficulty,
      input,
    );
  } catch (err) {
    assert.ok(err instanceof ApplicationFailure, `not an ApplicationFailure: ${String(err)}`);
    return err;
  }
  assert.fail('the activity succeeded');
}

describe('allowed local folders (PIFT_FILE_ROOTS)', () => {
  it('refuses file:///proc/self/environ as a dataset, typed BadInput, quoting none of the environment', async function () {
    if (!existsSync('/proc/self/environ')) this.skip();
    const { allowed, deps } = folders();
    const failure = await scoreFailure(deps, scoreInput(allowed, 'file:///proc/self/environ'));
    assert.equal(failure.type, FailureType.BadInput);
    assert.equal(failure.nonRetryable, true);
    assert.match(failure.message, /^input\.dataset: file:\/\/\/proc\/self\/environ is outside .*PIFT_FILE_ROOTS=/);
    const environ = readFileSync('/proc/self/environ', 'latin1').split('\0');
    // The allowed folders are named on purpose (the default store lies in the working directory, which is PWD).
    const named = (value: string) => deps.fileRoots.some((root) => root.includes(value));
    for (const entry of environ) {
      const value = entry.slice(entry.indexOf('=') + 1);
      if (value.length >= 8 && !named(value)) {
        assert.ok(!failure.message.includes(value), 'an environment value is in the message');
      }
    }
    // The plain-path spelling is the same location.
    await assert.rejects(
      async () => new DatasetRows(deps, '/proc/self/environ'),
      (err: unknown) => err instanceof InvalidDataError && err.where.field === 'input.dataset',
    );
  });

  it('refuses a link inside an allowed folder that points outside it, without reading the target', async () => {
    const { allowed, outside, deps } = folders();
    symlinkSync(join(outside, 'secret.jsonl'), join(allowed, 'train.jsonl'));
    symlinkSync(outside, join(allowed, 'data-dir'));
    for (const dataset of [
      pathToFileURL(join(allowed, 'train.jsonl')).href,
      join(allowed, 'data-dir', 'secret.jsonl'),
    ]) {
      const failure = await scoreFailure(deps, scoreInput(allowed, dataset));
      assert.equal(failure.type, FailureType.BadInput, dataset);
      assert.match(failure.message, /^input\.dataset: .* is outside the local folders this worker allows/);
      assert.ok(!failure.message.includes(CANARY));
    }
  });

  it('reads the same file once its folder is allowed (the refusal is the rule, not a broken read)', async () => {
    const { allowed, outside, deps } = folders();
    symlinkSync(join(outside, 'secret.jsonl'), join(allowed, 'train.jsonl'));
    const wider = { ...deps, fileRoots: fileRootsFromEnv({ PIFT_FILE_ROOTS: [allowed, outside].join(delimiter) }, []) };
    const rows = [];
    for await (const row of new DatasetRows(wider, join(allowed, 'train.jsonl'))) rows.push(row);
    assert.equal(rows[0].instruction, CANARY);
  });

  it('applies to the store root, also through a dangling link that would create it outside', async () => {
    const { allowed, outside, deps } = folders();
    symlinkSync(join(outside, 'not-yet'), join(allowed, 'store-link'));
    const dataset = join(allowed, 'train.jsonl');
    writeFileSync(dataset, '{"instruction":"a","output":"b"}\n');
    for (const store of ['/etc/pift-store', join(allowed, 'store-link'), join(allowed, 'store-link', 'runs')]) {
      const failure = await scoreFailure(deps, { ...scoreInput(allowed, dataset), store });
      assert.equal(failure.type, FailureType.BadInput, store);
      assert.match(failure.message, /^input\.store: /);
    }
    assert.ok(!existsSync(join(outside, 'not-yet')), 'nothing was written through the link');
    // A store that does not exist yet inside an allowed folder is fine, and remote stores are not local files.
    assert.equal(
      allowedLocation(join(allowed, 'new', 'store'), deps.fileRoots, 'input.store'),
      join(allowed, 'new', 'store'),
    );
    assert.equal(allowedLocation('s3://bucket/runs', deps.fileRoots, 'input.store'), 's3://bucket/runs');
  });

  it('lets a run with no store use the default store when PIFT_FILE_ROOTS is set and PIFT_STORE is not', async () => {
    const { allowed, deps } = folders();
    const { resolveInput } = createCpuActivities(deps);
    const cfg = await resolveInput({ dataset: join(allowed, 'train.jsonl') }, 'r');
    assert.equal(cfg.store, workerDefaults({}).store);
    // The default store directory itself, not what lies beside it.
    await assert.rejects(
      resolveInput({ dataset: join(allowed, 'train.jsonl'), store: join(process.cwd(), '.pift') }, 'r'),
      (err: unknown) => err instanceof ApplicationFailure && err.type === FailureType.BadInput,
    );
  });

  it('refuses a file URI that names no local path as bad input naming the field, not a crash', async () => {
    const { allowed, deps } = folders();
    for (const uri of ['file://other-host/data/train.jsonl', `${pathToFileURL(allowed).href}/a%2Fb.jsonl`]) {
      assert.throws(
        () => allowedLocation(uri, deps.fileRoots, 'input.evaluation.benchmarks[0].uri'),
        (err: unknown) => {
          assert.ok(err instanceof InvalidDataError, String(err));
          assert.equal(err.where.field, 'input.evaluation.benchmarks[0].uri');
          assert.match(err.message, /is not a local file URI/);
          return true;
        },
      );
      const failure = await scoreFailure(deps, scoreInput(allowed, uri));
      assert.equal(failure.type, FailureType.BadInput, uri);
      assert.match(failure.message, /^input\.dataset: /);
    }
    // The worker's own setting is the operator's to fix.
    assert.throws(
      () => fileRootsFromEnv({ PIFT_STORE: 'file://other-host/runs' }, []),
      (err: unknown) => err instanceof WorkerMisconfiguredError && err.setting === 'PIFT_STORE',
    );
  });

  it("the CPU worker's preflight lists no store-folder model outside its allowed folders", async () => {
    const { allowed, outside, deps } = folders();
    mkdirSync(join(outside, 'model'));
    writeFileSync(join(outside, 'model', 'config.json'), '{}');
    const { resolveInput, preflight } = createCpuActivities(deps);
    const ok = { dataset: join(allowed, 'train.jsonl'), store: join(allowed, 'store') };
    const outsideModel = pathToFileURL(join(outside, 'model')).href;
    for (const [input, field] of [
      [{ ...ok, training: { baseModel: outsideModel } }, 'input.training.baseModel'],
      [{ ...ok, baseline: { mode: 'existing', checkpoint: outsideModel } }, 'input.baseline.checkpoint'],
    ] as Array<[PipelineInput, string]>) {
      const cfg = await resolveInput(input, 'r');
      // In an activity's context, as the worker runs it: the check first claims the run id for its workflow.
      const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
      await assert.rejects(env.run(preflight, cfg), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.type, FailureType.BadInput);
        assert.match(err.message, new RegExp(`^${field.replace(/\./g, '\\.')}: .* is outside .*PIFT_FILE_ROOTS=`));
        return true;
      });
    }
  });

  it('applies to model directories: baseModel and baseline.checkpoint', async () => {
    const { allowed, outside, deps } = folders();
    mkdirSync(join(allowed, 'model'));
    mkdirSync(join(outside, 'model'));
    assert.equal(
      await localModel(deps, 'builtin:tiny-llama', '/unused', 'input.training.baseModel'),
      'builtin:tiny-llama',
    );
    assert.equal(
      await localModel(deps, join(allowed, 'x', '..', 'model'), '/unused', 'input.training.baseModel'),
      join(allowed, 'model'),
    );
    // `..` is taken by name, as the check took it; the kernel would climb from the link's target into `outside`.
    symlinkSync(outside, join(allowed, 'link'));
    await assert.rejects(
      localModel(deps, join(allowed, 'link', '..', 'outside', 'model'), '/unused', 'input.training.baseModel'),
      /does not exist on this worker/,
    );
    for (const [model, field] of [
      [join(outside, 'model'), 'input.training.baseModel'],
      [pathToFileURL(join(outside, 'model')).href + '/', 'input.baseline.checkpoint'],
    ]) {
      await assert.rejects(localModel(deps, model, join(allowed, 'dl'), field), (err: unknown) => {
        assert.ok(err instanceof InvalidDataError);
        assert.equal(err.where.field, field);
        assert.match(err.message, /PIFT_FILE_ROOTS=/);
        return true;
      });
    }
  });

  it('validation refuses the dataset, a benchmark and the store before any step runs', async () => {
    const { allowed, outside, deps } = folders();
    const { resolveInput } = createCpuActivities(deps);
    const ok = { dataset: join(allowed, 'train.jsonl'), store: join(allowed, 'store') };
    for (const [input, field] of [
      [{ ...ok, dataset: join(outside, 'secret.jsonl') }, 'input.dataset'],
      [{ ...ok, store: outside }, 'input.store'],
      [
        { ...ok, evaluation: { benchmarks: [{ name: 'b', uri: pathToFileURL(join(outside, 'secret.jsonl')).href }] } },
        'input.evaluation.benchmarks[0].uri',
      ],
    ] as Array<[PipelineInput, string]>) {
      await assert.rejects(resolveInput(input, 'r'), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.type, FailureType.BadInput);
        assert.ok(err.message.startsWith(`${field}: `), err.message);
        return true;
      });
    }
    assert.equal((await resolveInput({ ...ok, dataset: 's3://bucket/train.jsonl' }, 'r')).store, ok.store);
  });

  it('defaults to the given folders; an empty setting allows only the store; the worker’s own store is always allowed', () => {
    const { base, allowed } = folders();
    // The store of runs that name none, as workerDefaults resolves it: <cwd>/.pift/store with no PIFT_STORE.
    const defaultStore =
      realpathSync(process.cwd()) + localPathOf(workerDefaults({}).store, 'store')!.slice(process.cwd().length);
    assert.deepEqual(fileRootsFromEnv({}, [allowed, base]), [allowed, base, defaultStore]);
    assert.deepEqual(fileRootsFromEnv({ PIFT_FILE_ROOTS: '' }, [allowed]), [defaultStore]);
    assert.deepEqual(fileRootsFromEnv({ PIFT_FILE_ROOTS: '', PIFT_STORE: '' }, [allowed]), [defaultStore]);
    assert.throws(() => allowedLocation(join(allowed, 'a.jsonl'), [], 'input.dataset'), /PIFT_FILE_ROOTS=none/);
    const store = join(base, 'worker-store');
    assert.deepEqual(fileRootsFromEnv({ PIFT_FILE_ROOTS: allowed, PIFT_STORE: pathToFileURL(store).href }, []), [
      allowed,
      store,
    ]);
    assert.deepEqual(fileRootsFromEnv({ PIFT_FILE_ROOTS: allowed, PIFT_STORE: 's3://b/runs' }, []), [allowed]);
    // The worker's defaults: the project's data folder (the demo dataset is readable) and its working directory.
    const roots = depsFromEnv({}).fileRoots;
    assert.ok(roots.includes(realpathSync(process.cwd())));
    assert.doesNotThrow(() =>
      allowedLocation(join(__dirname, '..', 'data', 'demo', 'train.jsonl'), roots, 'input.dataset'),
    );
  });
});
