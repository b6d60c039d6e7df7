import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { before, describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { checkModel, hubFailure } from '../activities/python/check-model';
import { localModel } from '../activities/artifacts/hand-off';
import { InvalidDataError, WorkerMisconfiguredError } from '../common/failures';
import { saveTinyModel } from './helpers/tiny-model';

const base = realpathSync(mkdtempSync(join(tmpdir(), 'pift-check-model-')));
const dir = join(base, 'allowed');
mkdirSync(dir);
/** Beside the allowed folder, not in it: nothing here may be read, listed or copied, nor its contents described. */
const outside = join(base, 'outside');
mkdirSync(outside);
// Model directories are read only under the worker's allowed folders: here, the test's own.
const deps = { ...depsFromEnv({ ...process.env, PIFT_FILE_ROOTS: dir }), workDir: join(dir, 'work') };
const field = 'input.training.baseModel';
const check = (model: string, maxLength = 256) =>
  checkModel(deps, { runId: 'check-model-test', model, maxLength, field });

/** A model directory with a valid Llama config but no tokenizer at all: the trainer cannot train it. */
function modelWithoutTokenizer(): string {
  const model = join(dir, `no-tokenizer-${Math.random().toString(36).slice(2)}`);
  mkdirSync(model, { recursive: true });
  writeFileSync(
    join(model, 'config.json'),
    JSON.stringify({
      model_type: 'llama',
      vocab_size: 260,
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
    }),
  );
  // Weights are present (their content is never read by the check): only the tokenizer is missing.
  writeFileSync(join(model, 'model.safetensors'), '');
  return model;
}

/**
 * A loadable model directory: the builtin's config and tokenizer, saved once by Python for the whole test process
 * (each Python start costs seconds), and a weights file the check never reads.
 */
async function tinyModel(model: string): Promise<string> {
  await saveTinyModel(deps.python, model);
  writeFileSync(join(model, 'model.safetensors'), 'not weights');
  return model;
}

async function refused(model: string, pattern: RegExp): Promise<InvalidDataError> {
  const started = Date.now();
  const err = await check(model).then(
    () => assert.fail('the model check passed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof InvalidDataError, String(err));
  assert.equal(err.where.field, field);
  assert.match(err.message, pattern);
  // Refused in seconds, not after scoring: the check reads no weights and starts no training.
  assert.ok(Date.now() - started < 60_000, `took ${Date.now() - started} ms`);
  return err;
}

describe("checkModel (the GPU worker's model check)", function () {
  this.timeout(120_000);

  // The tiny model's first save is Python's start-up, not a check: outside the tests' own time.
  before(() => tinyModel(join(base, 'first-save')));

  it('accepts the builtin model and reports its tokenizer', async () => {
    const result = await check('builtin:tiny-llama');
    assert.equal(result.modelType, 'llama');
    assert.equal(result.tokenizerSize, 260);
  });

  it('serves a hf:// model from the model cache offline, reporting its commit, and names the cache when absent', async () => {
    // The layout the hub library leaves in a cache: refs/main names the commit, snapshots/<commit>/ holds the files.
    const cache = join(base, 'model-cache');
    const repo = join(cache, 'hub', 'models--acme--tiny-chat');
    const commit = '0123456789abcdef0123456789abcdef01234567';
    mkdirSync(join(repo, 'snapshots', commit), { recursive: true });
    await tinyModel(join(repo, 'snapshots', commit));
    mkdirSync(join(repo, 'refs'));
    writeFileSync(join(repo, 'refs', 'main'), commit);
    const hubDeps = { ...deps, env: { ...deps.env, PIFT_MODEL_CACHE: cache, HF_HUB_OFFLINE: '1' } };
    const hubCheck = (model: string) => checkModel(hubDeps, { runId: 'check-model-hub', model, maxLength: 64, field });
    const result = await hubCheck('hf://acme/tiny-chat');
    assert.equal(result.revision, commit);
    assert.equal(result.tokenizerSize, 260);
    const err = await hubCheck('hf://acme/absent@v1').then(
      () => assert.fail('a model missing from the cache passed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof InvalidDataError, String(err));
    assert.match(
      err.message,
      /^input\.training\.baseModel: hf:\/\/acme\/absent@v1 is not in the model cache .*HF_HUB_OFFLINE=1/,
    );
  });

  it('a hub model this worker cannot reach, not in its cache, names PIFT_MODEL_CACHE and HF_HUB_OFFLINE', async () => {
    const unreachable = {
      ...deps,
      env: {
        ...deps.env,
        PIFT_MODEL_CACHE: join(base, 'empty-cache'),
        HF_HUB_OFFLINE: '0',
        // Nothing listens here: what a worker without network meets.
        HF_ENDPOINT: 'http://127.0.0.1:9',
        HF_HUB_DOWNLOAD_TIMEOUT: '2',
        HF_HUB_ETAG_TIMEOUT: '2',
      },
    };
    const input = { runId: 'check-model-net', model: 'hf://acme/far-away', maxLength: 64, field };
    const err = await checkModel(unreachable, input).then(
      () => assert.fail('an unreachable hub model passed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkerMisconfiguredError, String(err));
    assert.equal(err.setting, 'PIFT_MODEL_CACHE');
    assert.match(err.message, /hf:\/\/acme\/far-away is not in the GPU worker's model cache .*HF_HUB_OFFLINE=1/);
  });

  it("converts a builtin under the download's time limit with one line of progress, no progress bar in errors", async () => {
    // A trainer whose check takes 2 s and draws 8 KB of progress bar, as a first conversion of the GGUF does.
    const python = join(dir, 'converting-python');
    const bar = Array.from({ length: 200 }, (_, i) => `\\rconverting: ${i}%%|${'#'.repeat(20)}|`).join('');
    const ok = { event: 'model_ok', model_type: 'llama', tokenizer_size: 49152, vocab_size: 49152, bos_token: null };
    Object.assign(ok, { eos_token: null, pad_token: null, max_position_embeddings: 2048 });
    writeFileSync(
      python,
      `#!/bin/sh\nprintf '${bar}\\n' >&2\nsleep 2\necho "progress bars off: $TQDM_DISABLE" >&2\n` +
        `[ -n "$PIFT_TEST_CONVERTS" ] || exit 1\necho '${JSON.stringify(ok)}'\n`,
      { mode: 0o755 },
    );
    const env = { ...deps.env, PIFT_CHECK_MODEL_TIMEOUT_MS: '500', PIFT_TEST_CONVERTS: '1' };
    const converting = (model: string, extra = {}) =>
      checkModel({ ...deps, python, env: { ...env, ...extra } }, { runId: 'convert', model, maxLength: 256, field });
    const said: unknown[] = [];
    const info = console.info;
    console.info = (line: unknown) => said.push(line);
    try {
      assert.equal((await converting('builtin:smollm2-135m-instruct')).modelType, 'llama');
    } finally {
      console.info = info;
    }
    assert.deepEqual(said, [
      "builtin:smollm2-135m-instruct: converting it into this worker's model cache (PIFT_MODEL_CACHE), once",
    ]);
    // A model that needs no conversion keeps the check's own limit.
    await assert.rejects(converting('builtin:tiny-llama'), /model check was killed after 500 ms/);
    // A failed conversion says its last line, without the bar.
    const err = await converting('builtin:smollm2-135m-instruct', { PIFT_TEST_CONVERTS: '' }).catch((e: Error) => e);
    assert.ok(err instanceof Error);
    assert.equal(err.message, 'model check exited with code 1: progress bars off: 1');
  });

  it('names HF_TOKEN for a gated hub model and the field for a missing one', () => {
    const hub = { model: 'hf://meta/gated', field };
    const gated = hubFailure(hub, 'huggingface_hub.errors.GatedRepoError: 401 Client Error. Cannot access gated repo');
    assert.ok(gated instanceof WorkerMisconfiguredError && gated.setting === 'HF_TOKEN', String(gated));
    const missing = hubFailure(hub, 'RepositoryNotFoundError: 404 Client Error');
    assert.ok(missing instanceof InvalidDataError && missing.where.field === field, String(missing));
    assert.equal(hubFailure({ model: 'builtin:tiny-llama', field }, 'ConnectionError'), undefined);
  });

  it('refuses a model directory whose tokenizer does not load, naming the field', async () => {
    const err = await refused(modelWithoutTokenizer(), /cannot load a tokenizer/);
    assert.match(err.message, /^input\.training\.baseModel: /);
  });

  it('refuses a directory whose config names no model type', async () => {
    const model = join(dir, 'bad-config');
    mkdirSync(model, { recursive: true });
    writeFileSync(join(model, 'config.json'), '{}');
    await refused(model, /cannot (read|load) a model config/);
  });

  it('refuses a store folder with no model files', async () => {
    mkdirSync(join(dir, 'store', 'empty-model'), { recursive: true });
    await refused(pathToFileURL(join(dir, 'store', 'empty-model')).href + '/', /no model config or tokenizer files/);
  });

  it('accepts a model stored as a folder, reading its config and tokenizer but not its weights', async () => {
    // Not loadable as weights: the check must not need them.
    const stored = await tinyModel(join(dir, 'store', 'stored-model'));
    const result = await check(pathToFileURL(stored).href);
    assert.equal(result.modelType, 'llama');
    assert.equal(result.tokenizerSize, 260);
  });

  it('refuses a bare Hub id with a message saying how to name the hub model', () =>
    refused('Qwen/Qwen2-0.5B', /no such directory is here; for the hub model write hf:\/\/Qwen\/Qwen2-0\.5B/));

  it('loads a relative model directory from where it was given, not from its scratch folder', async () => {
    const model = await tinyModel(join(dir, 'relative-model'));
    const given = relative(process.cwd(), model);
    assert.ok(!given.startsWith('/'), given);
    const result = await check(given);
    assert.equal(result.tokenizerSize, 260);
  });

  it('says the same about every location outside the allowed folders, and reads, lists and copies none of it', async () => {
    await tinyModel(join(outside, 'model'));
    writeFileSync(join(outside, 'model', 'notes.txt'), 'CANARY');
    mkdirSync(join(outside, 'empty'));
    writeFileSync(join(outside, 'a-file'), 'x');
    const scratch = join(deps.workDir, 'check-model-test', 'check-model');
    const messages = new Set<string>();
    for (const name of ['model', 'empty', 'a-file', 'missing']) {
      for (const model of [join(outside, name), pathToFileURL(join(outside, name)).href]) {
        await rm(scratch, { recursive: true, force: true });
        const err = await refused(model, /is outside the local folders .*PIFT_FILE_ROOTS=/);
        assert.doesNotMatch(err.message, /does not exist|is a file|config\.json|no model/);
        assert.ok(!existsSync(scratch), `${model}: the check wrote into its scratch folder`);
        messages.add(err.message.replaceAll(model, 'MODEL'));
      }
    }
    assert.equal(messages.size, 1, [...messages].join('\n'));
  });

  it('refuses exactly the locations that training refuses (localModel)', async () => {
    const accepted = await tinyModel(join(dir, 'agreed-model'));
    await tinyModel(join(outside, 'model'));
    symlinkSync(join(outside, 'model'), join(dir, 'link-out'));
    symlinkSync(outside, join(dir, 'dir-link'));
    const refusedByBoth = [
      join(outside, 'model'),
      pathToFileURL(join(outside, 'model')).href,
      pathToFileURL(join(outside, 'model')).href + '/',
      join(dir, 'link-out'),
      pathToFileURL(join(dir, 'dir-link', 'model')).href,
      relative(process.cwd(), join(outside, 'model')),
      join(dir, 'x', '..', '..', 'outside', 'model'),
      'file://other-host/models/m',
      'Qwen/Qwen2-0.5B',
    ];
    for (const model of refusedByBoth) {
      await refused(model, /./);
      await assert.rejects(localModel(deps, model, join(dir, 'dl'), field), (err: unknown) => {
        assert.ok(err instanceof InvalidDataError, `${model}: ${String(err)}`);
        assert.equal(err.where.field, field);
        return true;
      });
    }
    const acceptedByBoth = [accepted, pathToFileURL(accepted).href, relative(process.cwd(), accepted)];
    // The checks are separate Python processes, so they run side by side, each in its own scratch folder.
    const checked = await Promise.all(
      acceptedByBoth.map((model, i) =>
        checkModel(deps, { runId: `check-model-agreed-${i}`, model, maxLength: 256, field }),
      ),
    );
    checked.forEach((result, i) => assert.equal(result.tokenizerSize, 260, acceptedByBoth[i]));
    for (const model of acceptedByBoth) await localModel(deps, model, join(dir, 'dl'), field);
  });

  it("refuses a max length below the trainer's minimum as input.training.maxLength", async () => {
    const err = await check('builtin:tiny-llama', 16).then(
      () => assert.fail('passed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof InvalidDataError);
    assert.equal(err.where.field, 'input.training.maxLength');
  });
});
