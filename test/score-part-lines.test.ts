import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { toJsonl } from '../activities/artifacts/jsonl';
import { OpenPartLines } from '../activities/score/part-lines';
import type { ScoreRow } from '../activities/types';
import { storedScoreRow } from '../activities/score/score-rows';

/** Rows of every shape a part holds: plain scores, failures with raw answers, samples, non-ASCII text. */
const rowOf = (i: number): ScoreRow => {
  const base = { id: `r${i}`, scorer: 'judge-model', promptSha256: 'ab'.repeat(32) };
  if (i % 7 === 3)
    return { ...base, score: null, raw: `not a score ${'é'.repeat(i % 50)}`, error: 'unparseable answer' };
  if (i % 5 === 1) return { ...base, score: 2.5, samples: [2, 3], answers: ['2', `3 ✓ ${i}`] };
  return { ...base, score: 1 + (i % 5) };
};

describe('a score part kept as its lines', () => {
  it('stores the bytes toJsonl writes and the scores.jsonl lines, whatever order answers come in', () => {
    const rows = Array.from({ length: 3000 }, (_, i) => rowOf(i));
    const open = new OpenPartLines();
    const lines = open.of(4);
    const slots: number[] = [];
    // Answers arrive out of order; a part's slots are handed over in row order.
    for (const i of rows.map((_, i) => (i * 7919) % rows.length)) slots[i] = lines.add(rows[i]);

    assert.equal(lines.partJsonl(slots).toString('utf8'), toJsonl(rows));
    for (const [i, slot] of slots.entries()) {
      assert.equal(lines.scoresLine(slot).toString('utf8'), JSON.stringify(storedScoreRow(rows[i])));
      assert.equal(lines.score(slot), rows[i].score);
    }
    assert.deepEqual(lines.row(slots[3]), rows[3]);
  });

  it('gives a released part its buffers back empty', () => {
    const open = new OpenPartLines();
    const first = open.of(0);
    first.add(rowOf(0));
    open.release(0);
    const next = open.of(1);
    assert.equal(next, first);
    const slot = next.add(rowOf(2));
    assert.equal(slot, 0);
    assert.equal(next.partJsonl([slot]).toString('utf8'), toJsonl([rowOf(2)]));
  });
});
