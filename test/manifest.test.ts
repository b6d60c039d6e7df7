import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { describe, it } from 'mocha';
import { InvalidDataError } from '../common/failures';
import { canonicalJson, hashInputs } from '../activities/artifacts/hashing';
import { fromJsonl, readJsonl, toJsonl } from '../activities/artifacts/jsonl';
import { commitManifest, finishedStep, type StepManifest } from '../activities/artifacts/manifest';
import { filePart } from '../activities/artifacts/parts';
import {
  benchmarkKeys,
  evaluateKeys,
  generateKeys,
  scoreKeys,
  segmentKeys,
  trainKeys,
} from '../activities/artifacts/run-keys';
import { runStep, StepOutputs } from '../activities/artifacts/step';
import {
  commitCheckpoint,
  completeCheckpoints,
  optimizerStateFile,
  pruneCheckpoints,
} from '../activities/train/checkpoints';
import { LocalStore, NotFoundError } from '../store';

const freshStore = () => new LocalStore(mkdtempSync(join(tmpdir(), 'pift-manifest-')));

/** The checkpoint a training resumes from: the newest complete one of these inputs (trainStage's first candidate). */
async function newestCompleteCheckpoint(...args: Parameters<typeof completeCheckpoints>) {
  const [newest] = await completeCheckpoints(...args);
  return newest && { step: newest.step, key: newest.key };
}

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

/** Records the order of writes, to show that a step's manifest is always the last thing it writes. */
class RecordingStore extends LocalStore {
  readonly writes: string[] = [];
  override async put(key: string, body: string | Uint8Array): Promise<void> {
    await super.put(key, body);
    this.writes.push(key);
  }
  override async putFile(key: string, localPath: string) {
    const written = await super.putFile(key, localPath);
    this.writes.push(key);
    return written;
  }
}

const recordingStore = () => new RecordingStore(mkdtempSync(join(tmpdir(), 'pift-step-')));
const sha = (text: string) => createHash('sha256').update(text).digest('hex');

describe('runStep', () => {
  const spec = (inputsHash: string) => ({ runId: 'r', step: 'segment', key: 'r/segment/manifest.json', inputsHash });
  interface Result {
    rows: number;
    reused: boolean;
  }
  const writeTwo = (calls: { n: number }) => async (out: StepOutputs) => {
    calls.n += 1;
    await out.put('r/segment/a.jsonl', '{"id":"a"}\n');
    await out.put('r/segment/b.json', new TextEncoder().encode('{"é":1}'));
    return { rows: 1, reused: false } satisfies Result;
  };

  it('runs the body once, lists every output, commits the manifest last, and reuses it for the same inputs', async () => {
    const store = recordingStore();
    const calls = { n: 0 };
    assert.deepEqual(await runStep<Result>(store, spec('h1'), writeTwo(calls)), { rows: 1, reused: false });
    assert.deepEqual(store.writes, ['r/segment/a.jsonl', 'r/segment/b.json', 'r/segment/manifest.json']);
    const manifest = JSON.parse(await store.getText('r/segment/manifest.json')) as StepManifest<Result>;
    assert.equal(manifest.version, 1);
    assert.equal(manifest.step, 'segment');
    assert.equal(manifest.inputsHash, 'h1');
    assert.deepEqual(manifest.outputs, [
      { key: 'r/segment/a.jsonl', bytes: 11, sha256: sha('{"id":"a"}\n') },
      { key: 'r/segment/b.json', bytes: 8, sha256: sha('{"é":1}') },
    ]);

    assert.deepEqual(await runStep<Result>(store, spec('h1'), writeTwo(calls)), { rows: 1, reused: true });
    assert.equal(calls.n, 1, 'a finished step is not run again');
    // A result type without a `reused` flag comes back exactly as stored.
    await runStep(store, { ...spec('h2'), key: 'r/benchmarks/manifest.json' }, async () => [{ name: 'x' }]);
    assert.deepEqual(await runStep(store, { ...spec('h2'), key: 'r/benchmarks/manifest.json' }, async () => []), [
      { name: 'x' },
    ]);
  });

  it('refuses a step finished from other inputs, naming the manifest and the fix', async () => {
    const store = recordingStore();
    await runStep<Result>(store, spec('h1'), writeTwo({ n: 0 }));
    const calls = { n: 0 };
    await assert.rejects(runStep<Result>(store, spec('h2'), writeTwo(calls)), (e) => {
      assert.ok(e instanceof InvalidDataError);
      assert.ok(e.message.includes(store.uriFor('r/segment/manifest.json')), e.message);
      assert.match(e.message, /different inputs/);
      assert.match(e.message, /new run id/);
      assert.match(e.message, /delete/);
      return true;
    });
    assert.equal(calls.n, 0);
  });

  for (const [what, damage] of [
    ['missing', (s: LocalStore) => s.delete('r/segment/b.json')],
    ['short', (s: LocalStore) => s.put('r/segment/b.json', '{}')],
  ] as const) {
    it(`runs again when an output is ${what}`, async () => {
      const store = recordingStore();
      const calls = { n: 0 };
      await runStep<Result>(store, spec('h1'), writeTwo(calls));
      await damage(store);
      assert.deepEqual(await runStep<Result>(store, spec('h1'), writeTwo(calls)), { rows: 1, reused: false });
      assert.equal(calls.n, 2);
      assert.equal(await store.getText('r/segment/b.json'), '{"é":1}');
    });
  }

  it('reuses a step an earlier version committed under its own hash of the same inputs', async () => {
    const store = recordingStore();
    await runStep<Result>(store, spec('old-format'), writeTwo({ n: 0 }));
    const calls = { n: 0 };
    const upgraded = { ...spec('new-format'), earlierInputsHashes: ['old-format'] };
    assert.deepEqual(await runStep<Result>(store, upgraded, writeTwo(calls)), { rows: 1, reused: true });
    assert.equal(calls.n, 0);
    // Without that equivalence it would be a different configuration, refused.
    await assert.rejects(runStep<Result>(store, spec('new-format'), writeTwo(calls)), /different inputs/);
  });

  it('leaves no manifest when the body throws, so the next attempt runs it', async () => {
    const store = recordingStore();
    await assert.rejects(
      runStep(store, spec('h1'), async (out) => {
        await out.put('r/segment/a.jsonl', 'half');
        throw new Error('worker killed');
      }),
      /worker killed/,
    );
    assert.equal(await store.exists('r/segment/manifest.json'), false);
    const calls = { n: 0 };
    assert.deepEqual(await runStep<Result>(store, spec('h1'), writeTwo(calls)), { rows: 1, reused: false });
    assert.equal(calls.n, 1);
  });
});

describe('step parts', () => {
  it('reuses a file part through its marker, without making it again', async () => {
    const store = recordingStore();
    const dir = mkdtempSync(join(tmpdir(), 'pift-part-'));
    let made = 0;
    const produce = async () => {
      made += 1;
      const file = join(dir, 'answers.jsonl');
      writeFileSync(file, '{"id":"1","answer":"x"}\n');
      return file;
    };
    const out1 = new StepOutputs(store);
    await filePart(out1, 'r/generate/m/b.jsonl', 'r/generate/m/b.abc.done', produce);
    assert.deepEqual(store.writes, ['r/generate/m/b.jsonl', 'r/generate/m/b.abc.done'], 'the marker goes last');
    const out2 = new StepOutputs(store);
    await filePart(out2, 'r/generate/m/b.jsonl', 'r/generate/m/b.abc.done', produce);
    assert.equal(made, 1);
    assert.deepEqual(out2.entries, out1.entries);
    assert.equal(out1.entries[0].sha256, sha('{"id":"1","answer":"x"}\n'));
  });
});

describe('checkpoint manifests', () => {
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  const keys = trainKeys('r', 'stage-1');
  const commit = async (store: LocalStore, step: number, inputsHash = 'h') => {
    const dir = mkdtempSync(join(tmpdir(), 'pift-ckpt-'));
    writeFileSync(join(dir, 'model.safetensors'), `weights ${step}`);
    await commitCheckpoint(
      store,
      { runId: 'r', step: 'train/stage-1', inputsHash, folder: keys.checkpoint(step) },
      dir,
      step,
    );
  };

  it('commits checkpoints with the step manifest format, and still reads the old one', async () => {
    const store = freshStore();
    // Written by the previous version: { step, inputsHash, files }.
    const old = keys.checkpoint(10);
    await store.put(`${old}/model.safetensors`, 'xxxx');
    await store.put(
      `${old}/manifest.json`,
      JSON.stringify({ step: 10, inputsHash: 'h', files: [{ key: `${old}/model.safetensors`, bytes: 4, sha256: '' }] }),
    );
    const find = async () =>
      (await env.run(newestCompleteCheckpoint, store, keys.checkpoints, 'h')) as
        { step: number; key: string } | undefined;
    assert.deepEqual(await find(), { step: 10, key: old });

    await commit(store, 20);
    const manifest = JSON.parse(await store.getText(`${keys.checkpoint(20)}/manifest.json`)) as StepManifest<{
      step: number;
    }>;
    assert.equal(manifest.version, 1);
    assert.equal(manifest.inputsHash, 'h');
    assert.deepEqual(manifest.result, { step: 20 });
    assert.deepEqual(
      manifest.outputs.map((o) => o.key),
      [`${keys.checkpoint(20)}/model.safetensors`],
    );
    assert.deepEqual(await find(), { step: 20, key: keys.checkpoint(20) });
  });

  it('resumes from a checkpoint an earlier version hashed differently, and prefers a newer current one', async () => {
    const store = freshStore();
    await commit(store, 10, 'old-format');
    const find = async (earlier: string[]) =>
      (await env.run(newestCompleteCheckpoint, store, keys.checkpoints, 'new-format', earlier)) as
        { step: number; key: string } | undefined;
    assert.equal(await find([]), undefined);
    assert.deepEqual(await find(['old-format']), { step: 10, key: keys.checkpoint(10) });
    await commit(store, 20, 'new-format');
    assert.deepEqual(await find(['old-format']), { step: 20, key: keys.checkpoint(20) });
  });

  it('prunes to the newest checkpoints of these inputs, whichever format they were written in', async () => {
    const store = freshStore();
    const old = keys.checkpoint(10);
    await store.put(`${old}/model.safetensors`, 'xxxx');
    await store.put(`${old}/manifest.json`, JSON.stringify({ step: 10, inputsHash: 'h', files: [] }));
    await commit(store, 20, 'other');
    await commit(store, 30);
    await commit(store, 40);
    await pruneCheckpoints(store, keys.checkpoints, 2, 'h');
    const left = [...new Set((await store.list(keys.checkpoints)).map((k) => k.split('/')[4]))];
    assert.deepEqual(left, ['step-000000030', 'step-000000040']);
  });
});

describe('the last checkpoint', () => {
  it('leaves out only optimizer state, in the layouts of one process, FSDP and DeepSpeed', () => {
    const left = ['optimizer.pt', 'optimizer_0/__0_0.distcp', 'global_step9/zero_pp_rank_0_mp_rank_00_optim_states.pt'];
    const kept = ['model.safetensors', 'scheduler.pt', 'rng_state.pth', 'trainer_state.json', 'optimizer.json'];
    assert.deepEqual(left.filter(optimizerStateFile), left);
    assert.deepEqual(kept.filter(optimizerStateFile), []);
  });
});

describe('run keys', () => {
  it('names the artifact tree as earlier versions wrote it', () => {
    const h = 'abcdef0123456789';
    const score = scoreKeys('run');
    assert.deepEqual(
      [score.manifest, score.dataset, score.scores, score.prompt],
      ['run/score/manifest.json', 'run/score/dataset.jsonl', 'run/score/scores.jsonl', 'run/score/prompt.txt'],
    );
    assert.equal(scoreKeys('run').part(h, 3), 'run/score/parts/abcdef012345-00003.jsonl');
    const seg = segmentKeys('run');
    assert.deepEqual(
      [seg.manifest, seg.stage(2), seg.oneOff, seg.heldout, seg.summary],
      [
        'run/segment/manifest.json',
        'run/segment/stage-2.jsonl',
        'run/segment/one-off.jsonl',
        'run/segment/heldout.jsonl',
        'run/segment/summary.json',
      ],
    );
    assert.deepEqual(
      [benchmarkKeys('run').manifest, benchmarkKeys('run').prompts('vicuna')],
      ['run/benchmarks/manifest.json', 'run/benchmarks/vicuna.jsonl'],
    );
    const train = trainKeys('run', 'one-off');
    assert.deepEqual(
      [train.manifest, train.final, train.losses, train.checkpoints, train.checkpoint(25)],
      [
        'run/train/one-off/manifest.json',
        'run/train/one-off/final',
        'run/train/one-off/losses.json',
        'run/train/one-off/checkpoints',
        'run/train/one-off/checkpoints/step-000000025',
      ],
    );
    const gen = generateKeys('run', 'stage-3');
    assert.deepEqual(
      [gen.manifest, gen.answers('koala'), gen.answersDone('koala', h)],
      [
        'run/generate/stage-3/manifest.json',
        'run/generate/stage-3/koala.jsonl',
        'run/generate/stage-3/koala.abcdef012345.done',
      ],
    );
    const ev = evaluateKeys('run');
    assert.deepEqual(
      [ev.manifest, ev.results, ev.markdown, ev.judgments('stage-1', 'koala', h)],
      [
        'run/evaluate/manifest.json',
        'run/evaluate/results.json',
        'run/evaluate/results.md',
        'run/evaluate/judgments/stage-1/koala.abcdef012345.jsonl',
      ],
    );
  });
});

/** The hand-written canonical JSON of the first version, kept here as the reference the library must match. */
function firstVersionCanonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(firstVersionCanonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${firstVersionCanonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

describe('inputs hashing', () => {
  const inputs: unknown[] = [
    // The shapes the steps hash: score, segment, train (with its left-out settings), generate, evaluate, benchmarks.
    { dataset: 'a'.repeat(64), scorer: 'offline-heuristic-v1', prompt: 'ecc1', parseRetries: 2 },
    {
      scores: 'f00d',
      stages: { count: 3, rule: 'thresholds', thresholds: [1.5, 3.5], allowEmpty: false, seed: 1 },
      heldout: [0.05, 100],
    },
    {
      name: 'stage-2',
      dataSha256: 'beef',
      initModel: 's3://b/r/train/stage-1/final',
      maxSteps: 40,
      hyper: { learningRate: 2e-5, weightDecay: 0, bf16: 'auto', maxAttempts: undefined, warmupRatio: 0.03 },
    },
    { modelUri: 'file:///m', benchmarks: [{ name: 'vicuna', uri: 'file:///v', prompts: 80 }], maxLength: 1024 },
    { judge: 'gpt-4-0613', prompt: 'judge-pairwise-v1+sha256:cb3aa377e45cd3dc', candidates: ['x', 'y'] },
    [{ name: 'heldout', sha: '00' }],
    // Key order, unicode keys and strings, escapes, numbers, nesting, null.
    { b: 1, a: { d: [1, { z: null, y: 'ü\n"\\' }], c: true }, é: -0, Z: 1e21, _: 0.1 + 0.2, '\u2028': 'x' },
    'plain',
    42,
    null,
  ];

  it('writes the same bytes as the first version for the inputs steps hash', () => {
    for (const value of inputs) assert.equal(canonicalJson(value), firstVersionCanonicalJson(value));
  });

  it('keeps the inputs hashes of runs written by the first version', () => {
    // Pinned from the first version: a changed hash would make every resumed run refuse its finished steps.
    assert.equal(hashInputs(inputs[1]), 'c273c994342ec58d9a6a46e11f7484b3f8df153b06527cc33212a35baa30a906');
    assert.equal(hashInputs({ b: [1, 'x'], a: undefined }), sha('{"b":[1,"x"]}'));
  });
});

describe('streamed JSONL', () => {
  it('reads the same rows as the whole-text reader, across chunk boundaries and blank lines', async () => {
    const store = freshStore();
    // Multi-byte characters over several 64 KiB chunks, so some are split between chunks.
    const rows = Array.from({ length: 3000 }, (_, i) => ({ id: `r${i}`, text: 'ü✓🎉 '.repeat(i % 50), n: i }));
    const text = `${toJsonl(rows.slice(0, 10))}\n  \n${toJsonl(rows.slice(10))}`.replace(/\n$/, '');
    await store.put('r/score/dataset.jsonl', text);
    assert.deepEqual(await readJsonl(store, 'r/score/dataset.jsonl'), fromJsonl(text));
    assert.deepEqual(await readJsonl(store, 'r/score/dataset.jsonl'), rows);
    await store.put('r/empty.jsonl', '');
    assert.deepEqual(await readJsonl(store, 'r/empty.jsonl'), []);
    await assert.rejects(readJsonl(store, 'r/absent.jsonl'), NotFoundError);
  });
});
