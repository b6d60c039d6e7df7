import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { averageRanks, spearman } from '../activities/score/spearman';
import { binIndex, roundBinWidth, scoreHistogram } from '../activities/results/histogram';

const close = (actual: number | null, expected: number) =>
  assert.ok(actual !== null && Math.abs(actual - expected) < 1e-12, `${actual} is not ${expected}`);

describe('spearman', () => {
  it('ranks ties by the mean of the positions they span', () => {
    assert.deepEqual([...averageRanks([3, 1, 3, 2, 3])], [4, 1, 4, 2, 4]);
    assert.deepEqual([...averageRanks([0.5, 0.5])], [1.5, 1.5]);
  });

  it('without ties equals 1 - 6 sum(d^2) / (n (n^2 - 1))', () => {
    // d = [-2, 1, 1, -2, 0, 2]: sum 14, so 1 - 84 / 210 = 0.6.
    close(spearman([10, 20, 30, 40, 50, 60], [3, 1, 2, 6, 5, 4]), 0.6);
  });

  it('with ties is the correlation of the average ranks (by hand, and reference values)', () => {
    // y ranks [1, 2, 3.5, 5, 3.5] against 1..5: sxy 8, sxx 10, syy 9.5, so 8 / sqrt(95).
    close(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]), 8 / Math.sqrt(95));
    // Ties on both sides: ranks [1.5, 1.5, 3.5, 3.5, 5] and [4, 1, 2.5, 2.5, 5]: sxy 5, sxx 9, syy 9.5.
    close(spearman([1, 1, 2, 2, 3], [1.5, 0.2, 0.9, 0.9, 2]), 5 / Math.sqrt(85.5));
    // The same pairs through pandas (Series.rank(), average ties, then Series.corr()), printed to 16 digits.
    close(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]), 0.8207826816681234);
    close(spearman([1, 1, 2, 2, 3], [1.5, 0.2, 0.9, 0.9, 2]), 0.5407380704358752);
  });

  it('is 1 for the same order, -1 reversed, and undefined for a constant scorer or one pair', () => {
    close(spearman([1, 2, 3], [0.1, 5, 7]), 1);
    close(spearman([1, 2, 3], [9, 5, 0]), -1);
    assert.equal(spearman([1, 2, 3], [4, 4, 4]), null);
    assert.equal(spearman([1], [2]), null);
    assert.throws(() => spearman([1, 2], [1]), /2 values against 1/);
  });
});

describe('score histograms', () => {
  it('keeps one bucket per whole score on the 1-5 scale', () => {
    assert.deepEqual(scoreHistogram([1, 2.5, 5, 4.99, null, 2], false), { 1: 1, 2: 2, 4: 1, 5: 1, failed: 1 });
  });

  it('bins an open scale (IFD) in at most a dozen round bins keyed by their lower edge', () => {
    assert.equal(roundBinWidth(0.31, 1.2), 0.1);
    assert.equal(binIndex(1.2, 0.1), 12);
    const h = scoreHistogram([0.31, 0.45, 0.92, 1.2, null], true);
    assert.deepEqual(Object.keys(h), ['0.3', '0.4', '0.5', '0.6', '0.7', '0.8', '0.9', '1.0', '1.1', '1.2', 'failed']);
    assert.equal(h['0.3'] + h['0.4'] + h['0.9'] + h['1.2'] + h.failed, 5);
    assert.equal(h['1.2'], 1);
    assert.equal(h['0.5'], 0);
    assert.ok(Object.keys(scoreHistogram([0.001, 40], true)).length <= 12);
    assert.deepEqual(scoreHistogram([0.7, 0.7], true), { '0.7': 2 });
  });
});
