import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { after, before, describe, it } from 'mocha';
import type { StepManifest } from '../activities/artifacts/manifest';
import { trainKeys } from '../activities/artifacts/run-keys';
import { trainStage } from '../activities/train/train-stage';
import type { ActivityDeps } from '../activities/deps';
import type { TrainInput, TrainResult } from '../activities/types';
import { resolveTrainingDefaults } from '../common/settings/derive';
import { TrainingSchema, type TrainingOptions } from '../common/settings/schema';
import { LocalStore } from '../store';

const repoRoot = resolve(__dirname, '..');
const sha = (b: string | Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * The training activity on a local store with the builtin tiny model: 24 rows, batch 8, 2 epochs = 6 steps, a
 * checkpoint every 2 steps. Each case damages what a crash or a bad disk would and trains again.
 */
describe('checkpoints you can trust', function () {
  this.timeout(5 * 60_000);
  let root: string;
  let store: LocalStore;
  let deps: ActivityDeps;
  let input: TrainInput;
  const keys = trainKeys('r', 'stage-1');
  const ckpt = (step: number) => keys.checkpoint(step);
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  const train = () => env.run(trainStage, deps, input) as Promise<TrainResult>;
  const manifest = async (key: string) => JSON.parse(await store.getText(key)) as StepManifest<unknown>;
  const shaOf = async (manifestKey: string, file: string) =>
    (await manifest(manifestKey)).outputs.find((o) => o.key.endsWith(`/${file}`))?.sha256;
  let uninterrupted: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'pift-ckpt-trust-'));
    store = new LocalStore(join(root, 'store'));
    const rows = (await readFile(join(repoRoot, 'data', 'demo', 'train.jsonl'), 'utf8')).split('\n').slice(0, 24);
    const data = rows.join('\n') + '\n';
    await store.put('r/segment/stage-1.jsonl', data);
    const python = process.env.PIFT_PYTHON ?? join(repoRoot, '.venv', 'bin', 'python');
    deps = { env: { ...process.env }, workDir: join(root, 'work'), python, fileRoots: [root] };
    const training = resolveTrainingDefaults(
      Value.Default(TrainingSchema, { epochs: 2, saveSteps: 2, keepCheckpoints: 3 }) as TrainingOptions,
    );
    input = {
      runId: 'r',
      store: store.root,
      name: 'stage-1',
      dataUri: store.uriFor('r/segment/stage-1.jsonl'),
      dataSha256: sha(data),
      initModel: 'builtin:tiny-llama',
      maxSteps: 6,
      training,
    };
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('trains once: no optimizer state at the last step, final copied from it, the log kept', async () => {
    const result = await train();
    assert.equal(result.steps, 6);
    assert.ok(await store.exists(`${ckpt(4)}/optimizer.pt`), 'a checkpoint to train on keeps its optimizer');
    assert.ok(!(await store.exists(`${ckpt(6)}/optimizer.pt`)), 'the last one does not');
    uninterrupted = (await shaOf(keys.manifest, 'model.safetensors'))!;
    assert.equal(uninterrupted, await shaOf(`${ckpt(6)}/manifest.json`, 'model.safetensors'));
    assert.match(await store.getText(keys.log(1)), /\S/, 'the trainer log is in the store');
    // The model stays on this worker for the next stage, under the hash of its files.
    assert.equal((await train()).reused, true);
  });

  it('skips a same-size corrupted newest checkpoint for the older one, and trains to the same weights', async () => {
    await store.delete(keys.manifest); // the stage must run again
    const key = `${ckpt(6)}/model.safetensors`;
    const bytes = Buffer.from(await store.get(key));
    bytes[12] ^= 0xff;
    await store.put(key, bytes); // same size: only the sha256 tells
    const result = await train();
    assert.equal(result.resumedFromStep, 4);
    assert.equal(await shaOf(keys.manifest, 'model.safetensors'), uninterrupted);
  });

  it('skips a checkpoint the trainer cannot load though its bytes match its manifest', async () => {
    await store.delete(keys.manifest);
    const key = `${ckpt(6)}/model.safetensors`;
    const bytes = Buffer.from(await store.get(key));
    bytes[12] ^= 0xff;
    await store.put(key, bytes);
    // Damaged before it was hashed: its manifest vouches for the bad bytes.
    const m = await manifest(`${ckpt(6)}/manifest.json`);
    m.outputs = m.outputs.map((o) => (o.key === key ? { ...o, sha256: sha(bytes) } : o));
    await store.put(`${ckpt(6)}/manifest.json`, JSON.stringify(m));
    const result = await train();
    assert.equal(result.resumedFromStep, 4);
    assert.equal(await shaOf(keys.manifest, 'model.safetensors'), uninterrupted);
  });

  it('redoes a finished step whose output bytes changed, and refuses damaged training data', async () => {
    const key = `${keys.final}/model.safetensors`;
    const bytes = Buffer.from(await store.get(key));
    bytes[12] ^= 0xff;
    await store.put(key, bytes);
    const again = await train();
    assert.equal(again.reused, false, 'damaged outputs are written again, not handed on');
    assert.equal(await shaOf(keys.manifest, 'model.safetensors'), uninterrupted);
    assert.equal(sha(await store.get(key)), uninterrupted);

    await store.delete(keys.manifest);
    await store.put('r/segment/stage-1.jsonl', (await store.getText('r/segment/stage-1.jsonl')).replace('a', 'b'));
    await assert.rejects(train(), (e: Error) => /is damaged/.test(e.message) && /resume/.test(e.message));
    assert.ok(!existsSync(join(deps.workDir, 'r', 'train', 'stage-1', 'train.jsonl')), 'the bad bytes never landed');
  });
});
