import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { depsFromEnv } from '../activities/deps';
import { sha256 } from '../activities/artifacts/hashing';
import { segmentStages } from '../activities/segment/segment-stages';
import type { SegmentInput } from '../activities/types';
import { scoreRef } from './helpers/score-ref';
import { LocalStore } from '../store';
import { optimizerSteps } from '../common/settings/derive';

/** The ids of each stage file, in file order, and the thresholds, from segmentStages over rows scored `scores`. */
async function segmentScores(
  scores: number[],
  stages: Partial<SegmentInput['stages']>,
  order: (ids: string[]) => string[] = (ids) => ids,
): Promise<{ ids: string[][]; thresholds: number[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'pift-segment-'));
  const store = new LocalStore(dir);
  const score = new Map(scores.map((s, i) => [`r${i}`, s]));
  const ids = order([...score.keys()]);
  await store.put(
    'r/score/dataset.jsonl',
    ids.map((id) => JSON.stringify({ id, instruction: id, output: id })).join('\n'),
  );
  const scoresText = ids.map((id) => JSON.stringify({ id, score: score.get(id) })).join('\n');
  await store.put('r/score/scores.jsonl', scoresText);
  const count = stages.count ?? 3;
  const res = await segmentStages(
    { ...depsFromEnv({ PIFT_FILE_ROOTS: dir }), workDir: dir },
    {
      runId: 'r',
      store: `file://${dir}`,
      score: scoreRef(store, sha256(scoresText)),
      stages: { count, rule: 'thresholds', thresholds: [], allowEmpty: true, seed: 1, ...stages },
      heldoutFraction: 0,
      heldoutMax: 0,
    },
  );
  const stageIds = async (k: number) =>
    (await store.getText(`r/segment/stage-${k}.jsonl`))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l).id as string);
  return { ids: await Promise.all(res.stages.map((s) => stageIds(s.stage))), thresholds: res.thresholds };
}

describe('segmentation rules', () => {
  it('puts scores into the paper stages: < 1.5, [1.5, 3.5), >= 3.5', async () => {
    const scores = [1, 1.49, 1.5, 3.49, 3.5, 5];
    const { ids } = await segmentScores(scores, { thresholds: [1.5, 3.5] });
    const stageOf = (i: number) => 1 + ids.findIndex((stage) => stage.includes(`r${i}`));
    assert.deepEqual(
      scores.map((_, i) => stageOf(i)),
      [1, 1, 2, 2, 3, 3],
    );
  });

  it('cuts quantiles so stages are about equal and equal scores share a stage', async () => {
    const scores = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 5];
    const { ids, thresholds } = await segmentScores(scores, { rule: 'quantiles' });
    assert.deepEqual(thresholds, [3, 5]);
    assert.deepEqual(
      ids.map((stage) => stage.length),
      [4, 4, 4],
    );
  });

  it('shuffles once with a fixed seed, independent of input order', async () => {
    const scores = Array.from({ length: 50 }, () => 1);
    const stage1 = async (seed: number, order?: (ids: string[]) => string[]) =>
      (await segmentScores(scores, { count: 1, seed }, order)).ids[0];
    const a = await stage1(1);
    const b = await stage1(1, (ids) => [...ids].reverse());
    assert.deepEqual(a, b);
    assert.notDeepEqual(
      a,
      scores.map((_, i) => `r${i}`),
    );
    assert.notDeepEqual(await stage1(2), a);
  });

  it('counts optimizer steps as the HF Trainer does', () => {
    assert.equal(optimizerSteps(32, { batchSize: 8, gradientAccumulation: 1, epochs: 3 }), 12);
    assert.equal(optimizerSteps(33, { batchSize: 8, gradientAccumulation: 1, epochs: 1 }), 5);
    assert.equal(optimizerSteps(100, { batchSize: 16, gradientAccumulation: 4, epochs: 2 }), 4);
  });
});

describe('segmentStages on a store', () => {
  const setup = async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pift-segment-'));
    const store = new LocalStore(dir);
    const rows = Array.from({ length: 30 }, (_, i) => ({
      id: `r${i}`,
      instruction: `task ${i}`,
      input: '',
      output: `${i}`,
    }));
    // Scores 1.0 … 3.8 (r29 unparseable): r0-r4 < 1.5, r5-r24 in [1.5, 3.5), r25-r28 >= 3.5.
    const scores = rows.map((r, i) => ({
      id: r.id,
      score: i < 29 ? 1 + i / 10 : null,
      scorer: 't',
      promptSha256: 'x',
    }));
    await store.put('r/score/dataset.jsonl', rows.map((r) => JSON.stringify(r)).join('\n'));
    const scoresText = scores.map((s) => JSON.stringify(s)).join('\n');
    await store.put('r/score/scores.jsonl', scoresText);
    const input = (stages: Partial<SegmentInput['stages']>, heldoutFraction = 0): SegmentInput => ({
      runId: 'r',
      store: `file://${dir}`,
      score: scoreRef(store, sha256(scoresText)),
      stages: { count: 3, rule: 'thresholds', thresholds: [1.5, 3.5], allowEmpty: false, seed: 1, ...stages },
      heldoutFraction,
      heldoutMax: 100,
    });
    return { store, input, dir };
  };
  // The test's store is a temp folder: the worker allows it like any folder it is told to.
  const deps = (dir: string) => ({ ...depsFromEnv({ PIFT_FILE_ROOTS: dir }), workDir: dir });

  it('refuses scores whose bytes are not those the score step recorded, naming the setting and the fix', async () => {
    const { store, input, dir } = await setup();
    const text = await store.getText('r/score/scores.jsonl');
    // Damaged after the score, where reading a line's head would not notice.
    await store.put('r/score/scores.jsonl', text.replace('"scorer":"t"', '"scorer":"t'));
    await assert.rejects(
      segmentStages(deps(dir), input({})),
      (err: Error & { type?: string; nonRetryable?: boolean }) =>
        err.type === 'CorruptArtifact' &&
        err.nonRetryable === true &&
        /input\.score\.scoresUri/.test(err.message) &&
        /pift resume/.test(err.message),
    );
  });

  it('writes one JSONL per stage and leaves unscored rows out', async () => {
    const { store, input, dir } = await setup();
    const res = await segmentStages(deps(dir), input({}));
    assert.deepEqual(
      res.stages.map((s) => s.rows),
      [5, 20, 4],
    );
    assert.equal(res.unscored, 1);
    assert.equal(res.oneOff.rows, 29);
    const stage3 = (await store.getText('r/segment/stage-3.jsonl'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).id);
    assert.deepEqual([...stage3].sort(), ['r25', 'r26', 'r27', 'r28']);
    assert.deepEqual(JSON.parse(await store.getText('r/segment/summary.json')).thresholds, [1.5, 3.5]);
  });

  it('holds out a seeded split before staging', async () => {
    const { input, dir } = await setup();
    const res = await segmentStages(deps(dir), input({}, 0.2));
    assert.equal(res.heldout?.rows, 6);
    assert.equal(res.oneOff.rows + res.unscored + 6, 30);
  });

  it('refuses an empty stage unless allowed, naming the fix', async () => {
    const { input, dir } = await setup();
    await assert.rejects(
      segmentStages(deps(dir), input({ thresholds: [0.5, 3.5] })),
      /stage 1 of 3 is empty.*allowEmpty/,
    );
    const res = await segmentStages(deps(dir), input({ thresholds: [0.5, 3.5], allowEmpty: true }));
    assert.equal(res.stages[0].rows, 0);
  });

  it('makes equal stages of mixed difficulty for the random control', async () => {
    const { input, dir } = await setup();
    const res = await segmentStages(deps(dir), input({ rule: 'random' }));
    assert.deepEqual(
      res.stages.map((s) => s.rows),
      [10, 10, 9],
    );
    assert.ok(
      res.stages.every((s) => s.minScore! < 1.5 || s.maxScore! >= 2),
      'stages are not ordered by difficulty',
    );
  });
});
