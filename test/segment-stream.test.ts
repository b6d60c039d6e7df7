import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { depsFromEnv } from '../activities/deps';
import { sha256 } from '../activities/artifacts/hashing';
import { segmentStages } from '../activities/segment/segment-stages';
import { seededOrder } from './helpers/seeded-order';
import { rowsPerPart } from '../activities/artifacts/parts';
import { StepOutputs } from '../activities/artifacts/step';
import { storedScoreRow } from '../activities/score/score-answers';
import type { SegmentInput, SegmentResult } from '../activities/types';
import { scoreRef } from './helpers/score-ref';
import { LocalStore } from '../store';

/** A seeded dataset and its scores, written as the score step writes them (or shuffled, as other tools might). */
interface RunOptions {
  shuffledScores?: boolean;
  /** scores.jsonl as runs write it now: `{"id", "score"}` only. */
  compact?: boolean;
  /** Some rows scored twice: the later line wins. */
  rescored?: boolean;
  heldoutFraction?: number;
}

async function writeRun(store: LocalStore, n: number, options: RunOptions) {
  const rows = Array.from({ length: n }, (_, i) => ({
    id: i % 7 === 0 ? `L${i + 1}` : `row-${(i * 7919) % 100003}`,
    instruction: `task ${i} \u00e9\u{1f600} "quoted"`,
    input: i % 3 === 0 ? '' : `input ${i}`,
    output: `${i}`,
  }));
  const scoreOf = (i: number): number | null =>
    i % 29 === 0 ? null : [1, 1.25, 2, 2.5, 3, 3.5, 3.5625, 4.125, 4.166666666666667, 5][(i * 31) % 10];
  let scores = rows
    .map((r, i) => ({ id: r.id, score: scoreOf(i), scorer: 't', promptSha256: 'x'.repeat(64) }))
    .filter((_, i) => i % 41 !== 5); // some rows have no score line at all
  if (options.rescored) scores.push(...scores.slice(10, 20).map((s) => ({ ...s, score: 4.5 })));
  if (options.compact) scores = scores.map((s) => storedScoreRow(s) as (typeof scores)[number]);
  if (options.shuffledScores) scores = [...scores].sort((a, b) => (sha256(a.id) < sha256(b.id) ? -1 : 1));
  await store.put('r/score/dataset.jsonl', rows.map((r) => JSON.stringify(r) + '\n').join(''));
  await store.put('r/score/scores.jsonl', scores.map((s) => JSON.stringify(s) + '\n').join(''));
}

/** Everything a segmentation wrote, reduced to one hash (URIs left out: they name the temp folder). */
async function digestOf(store: LocalStore, res: SegmentResult): Promise<string> {
  const files = ['stage-1', 'stage-2', 'stage-3', 'stage-4', 'one-off', 'heldout']
    .map((n) => `r/segment/${n}.jsonl`)
    .concat('r/segment/summary.json');
  const parts: string[] = [];
  for (const key of files) parts.push((await store.exists(key)) ? sha256(await store.get(key)) : '-');
  const { stages, oneOff, heldout, thresholds, unscored } = res;
  return sha256(
    JSON.stringify({
      parts,
      stages: stages.map(({ uri: _u, ...s }) => s),
      oneOff: { rows: oneOff.rows, sha256: oneOff.sha256 },
      heldout: heldout?.rows,
      thresholds,
      unscored,
    }),
  );
}

async function segmentOnce(n: number, stages: Partial<SegmentInput['stages']>, options: RunOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'pift-segment-stream-'));
  try {
    const store = new LocalStore(dir);
    await writeRun(store, n, options);
    const input: SegmentInput = {
      runId: 'r',
      store: `file://${dir}`,
      score: scoreRef(store, sha256(await store.get('r/score/scores.jsonl'))),
      stages: { count: 3, rule: 'thresholds', thresholds: [1.5, 3.5], allowEmpty: false, seed: 11, ...stages },
      heldoutFraction: options.heldoutFraction ?? 0.1,
      heldoutMax: 25,
    };
    const res = await segmentStages({ ...depsFromEnv({ PIFT_FILE_ROOTS: dir }), workDir: dir }, input);
    return { res, digest: await digestOf(store, res) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('segmentation outputs (pinned)', () => {
  // Hashes of what the version that held every row in memory wrote for the same input: streaming changes nothing.
  const cases: Array<[string, Partial<SegmentInput['stages']>, RunOptions, string]> = [
    ['thresholds, scores in dataset order', {}, {}, '2560755ee25f284f3fd653fcc9d86bcda23d9dbc010ff3827568a3f76a1065fd'],
    [
      'thresholds, scores.jsonl without scorer and prompt on each row',
      {},
      { compact: true },
      '2560755ee25f284f3fd653fcc9d86bcda23d9dbc010ff3827568a3f76a1065fd',
    ],
    [
      'thresholds, scores in another order',
      {},
      { shuffledScores: true },
      '2560755ee25f284f3fd653fcc9d86bcda23d9dbc010ff3827568a3f76a1065fd',
    ],
    [
      'quantiles, 4 stages',
      { rule: 'quantiles', count: 4 },
      {},
      '2b3f27bb56d1b11bce3019926edd013a7a4d17d30a4b419e6e13ca6d9a897fe8',
    ],
    ['rows scored twice', {}, { rescored: true }, 'a3b6b2a0ee78c7f3a5f8d7c7c8de84666308766be55a0857de59cefae6bbf3ce'],
    [
      'random control',
      { rule: 'random' },
      { heldoutFraction: 0 },
      '6b0c553bd19d7b86fa61d16304f7c19134fa4be3f283b40970c78352a3fe5ca2',
    ],
  ];
  for (const [name, stages, options, expected] of cases) {
    it(name, async () => {
      const { digest } = await segmentOnce(600, stages, options);
      assert.equal(digest, expected);
    });
  }
});

describe('held-out split over many rows', () => {
  it('holds out the head of the seeded order, as seededOrder over every row does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pift-heldout-'));
    try {
      const store = new LocalStore(dir);
      await writeRun(store, 5000, {});
      const rows = (await store.getText('r/score/dataset.jsonl'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { id: string });
      const res = await segmentStages(
        { ...depsFromEnv({ PIFT_FILE_ROOTS: dir }), workDir: dir },
        {
          runId: 'r',
          store: `file://${dir}`,
          score: scoreRef(store, sha256(await store.get('r/score/scores.jsonl'))),
          stages: { count: 3, rule: 'thresholds', thresholds: [1.5, 3.5], allowEmpty: false, seed: 5 },
          heldoutFraction: 0.5,
          heldoutMax: 40,
        },
      );
      assert.equal(res.heldout?.rows, 40);
      const heldout = (await store.getText('r/segment/heldout.jsonl'))
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { id: string }).id);
      assert.deepEqual(
        heldout,
        seededOrder(rows, '5:heldout')
          .slice(0, 40)
          .map((r) => r.id),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('segmentation at scale', () => {
  it('segments a stage of 200,000 rows', async function () {
    this.timeout(120_000);
    const dir = mkdtempSync(join(tmpdir(), 'pift-segment-200k-'));
    try {
      const store = new LocalStore(dir);
      const n = 210_000;
      const lines: string[] = [];
      const scoreLines: string[] = [];
      for (let i = 0; i < n; i++) {
        lines.push(JSON.stringify({ id: `r${i}`, instruction: 'x', input: '', output: 'y' }));
        // Stage 3 (>= 3.5) holds all but every 21st row.
        scoreLines.push(JSON.stringify({ id: `r${i}`, score: i % 21 === 0 ? 1 + (i % 2) : 4 }));
      }
      await store.put('r/score/dataset.jsonl', lines.join('\n') + '\n');
      await store.put('r/score/scores.jsonl', scoreLines.join('\n') + '\n');
      const res = await segmentStages(
        { ...depsFromEnv({ PIFT_FILE_ROOTS: dir }), workDir: dir },
        {
          runId: 'r',
          store: `file://${dir}`,
          score: scoreRef(store, sha256(await store.get('r/score/scores.jsonl'))),
          stages: { count: 3, rule: 'thresholds', thresholds: [1.5, 3.5], allowEmpty: false, seed: 1 },
          heldoutFraction: 0,
          heldoutMax: 1,
        },
      );
      assert.deepEqual(
        res.stages.map((s) => s.rows),
        [5000, 5000, 200_000],
      );
      assert.equal(res.oneOff.rows, n);
      assert.equal(res.stages[2].minScore, 4);
      const stage3 = await store.get('r/segment/stage-3.jsonl');
      assert.equal(stage3.toString().split('\n').length, 200_001);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('fewer, smaller score objects', () => {
  it('keeps parts of 100 rows up to 100,000 rows, then at most 1,000 parts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pift-parts-'));
    try {
      const out = new StepOutputs(new LocalStore(dir));
      assert.equal(await rowsPerPart(out, 'p/0.jsonl', 96), 100);
      assert.equal(await rowsPerPart(out, 'p/0.jsonl', 100_000), 100);
      assert.equal(await rowsPerPart(out, 'p/0.jsonl', 1_000_000), 1000);
      assert.equal(await rowsPerPart(out, 'p/0.jsonl', 2_500_001), 2501);
      // A run whose first part was written with 100 rows goes on with them.
      await out.store.put('p/0.jsonl', Array.from({ length: 100 }, (_, i) => `{"id":"${i}"}\n`).join(''));
      assert.equal(await rowsPerPart(out, 'p/0.jsonl', 1_000_000), 100);
      await out.store.put('p/0.jsonl', Array.from({ length: 1000 }, (_, i) => `{"id":"${i}"}\n`).join(''));
      assert.equal(await rowsPerPart(out, 'p/0.jsonl', 1_000_000), 1000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes score rows without the scorer and prompt hash every row repeated', () => {
    const row = { id: 'L1', score: 3.5, scorer: 'gpt-4-0613', promptSha256: 'a'.repeat(64) };
    assert.equal(JSON.stringify(storedScoreRow(row)), '{"id":"L1","score":3.5}');
    const failed = { id: 'L2', score: null, scorer: 'm', promptSha256: 'b', raw: 'x', error: 'unparseable answer' };
    assert.deepEqual(storedScoreRow(failed), { id: 'L2', score: null, raw: 'x', error: 'unparseable answer' });
  });
});
