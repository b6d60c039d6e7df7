import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { describe, it } from 'mocha';
import { InvalidDataError } from '../common/failures';
import { commitManifest, finishedStep } from '../activities/artifacts/manifest';
import { newestCompleteCheckpoint } from '../activities/train/train-stage';
import { LocalStore } from '../store';

const freshStore = () => new LocalStore(mkdtempSync(join(tmpdir(), 'pift-manifest-')));

describe('step manifests', () => {
  it('reuses a finished step only for the same inputs and intact outputs', async () => {
    const store = freshStore();
    await store.put('r/score/scores.jsonl', 'abc');
    await commitManifest(store, 'r/score/manifest.json', {
      runId: 'r',
      step: 'score',
      inputsHash: 'h1',
      outputs: [{ key: 'r/score/scores.jsonl', bytes: 3, sha256: '' }],
      result: { n: 1 },
    });
    assert.deepEqual(await finishedStep(store, 'r/score/manifest.json', 'h1'), { n: 1 });
    await assert.rejects(
      finishedStep(store, 'r/score/manifest.json', 'h2'),
      (e) => e instanceof InvalidDataError && /different inputs/.test(e.message),
    );
    await store.put('r/score/scores.jsonl', 'abcd');
    assert.equal(
      await finishedStep(store, 'r/score/manifest.json', 'h1'),
      undefined,
      'a damaged output means the step runs again',
    );
    assert.equal(await finishedStep(store, 'r/other/manifest.json', 'h1'), undefined);
  });

  it('resumes from the newest checkpoint whose manifest and files are complete', async () => {
    const store = freshStore();
    const ckpt = async (step: number, opts: { manifest?: boolean; hash?: string; truncate?: boolean } = {}) => {
      const prefix = `r/train/stage-1/checkpoints/step-${String(step).padStart(9, '0')}`;
      await store.put(`${prefix}/model.safetensors`, opts.truncate ? 'xx' : 'xxxx');
      if (opts.manifest !== false) {
        const files = [{ key: `${prefix}/model.safetensors`, bytes: 4, sha256: '' }];
        await store.put(`${prefix}/manifest.json`, JSON.stringify({ step, inputsHash: opts.hash ?? 'h', files }));
      }
    };
    await ckpt(10);
    await ckpt(20);
    await ckpt(30, { truncate: true }); // files damaged after the commit
    await ckpt(40, { manifest: false }); // upload cut short
    await ckpt(50, { hash: 'other' }); // another configuration
    // It runs inside the training activity (it logs the checkpoints it skips).
    const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const found = (await env.run(newestCompleteCheckpoint, store, 'r/train/stage-1/checkpoints', 'h')) as
      { step: number } | undefined;
    assert.equal(found?.step, 20);
    assert.equal(await env.run(newestCompleteCheckpoint, store, 'r/train/stage-2/checkpoints', 'h'), undefined);
  });
});
