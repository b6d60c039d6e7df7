/**
 * The histogram of a score step's result: a few numbers that fit in workflow history. Scores on the paper's 1-5 scale
 * get one bucket per whole score (`"1"`..`"5"`, 5 holding 5.0); scores on an open scale (IFD, a loss ratio, mostly
 * 0-1.5) get at most about a dozen equal bins of a round width, keyed by their lower edge (`"0.8"` is 0.8 <= s < 0.9),
 * in ascending order.
 * Rows without a score are counted as `"failed"`.
 */

/** Scorers whose scores are not on the 1-5 scale. */
export const isOpenScale = (scorer: string) => scorer.startsWith('ifd:');

const ROUND_WIDTHS = [1, 2, 2.5, 5];

/** The bin of `value` for bins `width` wide from 0, immune to float noise (1.2 / 0.1 is 11.999999999999998). */
export const binIndex = (value: number, width: number) => Math.floor(Number((value / width).toPrecision(12)));
const MAX_BINS = 12;

/** The smallest round width (1, 2, 2.5 or 5 times a power of ten) that covers [low, high] in MAX_BINS bins. */
export function roundBinWidth(low: number, high: number): number {
  const span = high - low;
  if (!(span > 0)) return 0.1;
  for (let exp = Math.floor(Math.log10(span / MAX_BINS)) - 1; ; exp++) {
    for (const w of ROUND_WIDTHS) {
      const width = w * 10 ** exp;
      if (binIndex(high, width) - binIndex(low, width) + 1 <= MAX_BINS) return width;
    }
  }
}

/**
 * A bin's lower edge with the width's decimals, without float noise: `0.3`, and `1.0` rather than `1`, since an
 * integer-like key would be listed before the others by every JavaScript object.
 */
const edge = (value: number, width: number) =>
  value.toFixed(String(Number(width.toPrecision(12))).split('.')[1]?.length ?? 0);

/**
 * Counts one score on the 1-5 scale into `histogram` as scoreHistogram does, so a step can count rows as they pass
 * instead of keeping their scores: buckets appear in the order rows first fill them, as there.
 */
export function countOnClosedScale(histogram: Record<string, number>, score: number | null): void {
  const bucket = score === null ? 'failed' : String(Math.min(5, Math.floor(score)));
  histogram[bucket] = (histogram[bucket] ?? 0) + 1;
}

/** `scores` is read twice on an open scale, so it must be an array or another iterable that starts over. */
export function scoreHistogram(scores: Iterable<number | null>, openScale: boolean): Record<string, number> {
  const histogram: Record<string, number> = {};
  if (!openScale) {
    for (const s of scores) countOnClosedScale(histogram, s);
    return histogram;
  }
  const add = (bucket: string) => (histogram[bucket] = (histogram[bucket] ?? 0) + 1);
  let low = Infinity;
  let high = -Infinity;
  for (const s of scores) {
    if (s === null) continue;
    low = Math.min(low, s);
    high = Math.max(high, s);
  }
  const width = roundBinWidth(low, high);
  // Bins in ascending order, so the record reads as a histogram.
  for (let b = binIndex(low, width); b <= binIndex(high, width); b++) histogram[edge(b * width, width)] = 0;
  for (const s of scores) add(s === null ? 'failed' : edge(binIndex(s, width) * width, width));
  return histogram;
}
