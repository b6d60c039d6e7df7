/**
 * Spearman's rank correlation: Pearson's correlation of the two samples' ranks, ties given the average of the ranks
 * they span (the "fractional ranking" that scipy.stats.spearmanr uses), so it stays exact when a 1-5 scorer gives
 * many rows the same score.
 */

/** 1-based ranks of `values`, ties sharing the mean of their positions. */
export function averageRanks(values: ArrayLike<number>): Float64Array {
  const order = Uint32Array.from({ length: values.length }, (_, i) => i);
  // A total order (ties by position), so any sort gives the same ranks.
  order.sort((a, b) => values[a] - values[b] || a - b);
  const ranks = new Float64Array(values.length);
  for (let start = 0; start < order.length;) {
    let end = start + 1;
    while (end < order.length && values[order[end]] === values[order[start]]) end++;
    // Positions start..end-1 (0-based) are ranks start+1..end: their mean is (start + 1 + end) / 2.
    const rank = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) ranks[order[k]] = rank;
    start = end;
  }
  return ranks;
}

function mean(v: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i];
  return sum / v.length;
}

function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number | null {
  const [mx, my] = [mean(x), mean(y)];
  let [sxy, sxx, syy] = [0, 0, 0];
  for (let i = 0; i < x.length; i++) {
    const [dx, dy] = [x[i] - mx, y[i] - my];
    sxy += dx * dy;
    sxx += dx ** 2;
    syy += dy ** 2;
  }
  // A constant sample has no ranking to agree with.
  return sxx === 0 || syy === 0 ? null : sxy / Math.sqrt(sxx * syy);
}

/** Spearman's rho of paired samples; null with fewer than two pairs or when either side is constant. */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number | null {
  if (x.length !== y.length) throw new Error(`spearman: ${x.length} values against ${y.length}`);
  if (x.length < 2) return null;
  return pearson(averageRanks(x), averageRanks(y));
}
