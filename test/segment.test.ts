import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { quantileThresholds, seededOrder, stageOf } from '../activities/segment-stages';
import { optimizerSteps } from '../common/input';

describe('segmentation rules', () => {
  it('puts scores into the paper stages: < 1.5, [1.5, 3.5), >= 3.5', () => {
    const t = [1.5, 3.5];
    assert.deepEqual(
      [1, 1.49, 1.5, 3.49, 3.5, 5].map((s) => stageOf(s, t)),
      [1, 1, 2, 2, 3, 3],
    );
  });

  it('cuts quantiles so stages are about equal and equal scores share a stage', () => {
    const scores = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 5];
    const t = quantileThresholds(scores, 3);
    const counts = [1, 2, 3].map((k) => scores.filter((s) => stageOf(s, t) === k).length);
    assert.deepEqual(t, [3, 5]);
    assert.deepEqual(counts, [4, 4, 4]);
  });

  it('shuffles once with a fixed seed, independent of input order', () => {
    const rows = Array.from({ length: 50 }, (_, i) => ({ id: `r${i}` }));
    const a = seededOrder(rows, 'seed:stage-1').map((r) => r.id);
    const b = seededOrder([...rows].reverse(), 'seed:stage-1').map((r) => r.id);
    assert.deepEqual(a, b);
    assert.notDeepEqual(
      a,
      rows.map((r) => r.id),
    );
    assert.notDeepEqual(
      seededOrder(rows, 'other:stage-1').map((r) => r.id),
      a,
    );
  });

  it('counts optimizer steps as the HF Trainer does', () => {
    assert.equal(optimizerSteps(32, { batchSize: 8, gradientAccumulation: 1, epochs: 3 }), 12);
    assert.equal(optimizerSteps(33, { batchSize: 8, gradientAccumulation: 1, epochs: 1 }), 5);
    assert.equal(optimizerSteps(100, { batchSize: 16, gradientAccumulation: 4, epochs: 2 }), 4);
  });
});
