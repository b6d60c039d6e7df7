import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import {
  bootstrapInterval,
  seededRandom,
  signTestPValue,
  winRateStatistics,
  type StoredVerdict,
} from '../activities/results/statistics';
import { buildWinRateReport, formatPValue, renderStatisticsMarkdown } from '../activities/results/report';
import { countOutcomes } from '../activities/results/win-rate';
import { verdictFromReplies, type Outcome, type Preference } from '../activities/results/verdict';

/**
 * A scripted judge: the replies for order 1 (baseline shown first) and order 2 (candidate shown first) that make the
 * candidate `p1` then `p2`; 'garbage' is a reply that does not parse. Each prompt is stored as evaluate.ts stores it.
 */
type Script = [Preference | 'garbage', Preference | 'garbage', candidate: string, baseline: string];
function judged(script: Script[]): StoredVerdict[] {
  const reply = (order: 1 | 2, p: Preference | 'garbage') =>
    p === 'garbage'
      ? 'I cannot decide'
      : order === 1
        ? { better: '6 8', tie: '7 7', worse: '9 5' }[p]
        : { better: '8 6', tie: '7 7', worse: '5 9' }[p];
  return script.map(([p1, p2, candidate, baseline]) => {
    const [replyOrder1, replyOrder2] = [reply(1, p1), reply(2, p2)];
    return {
      ...verdictFromReplies(replyOrder1, replyOrder2),
      replyOrder1,
      replyOrder2,
      candidateChars: candidate.length,
      baselineChars: baseline.length,
    };
  });
}

// 8 prompts: 3 wins, 3 ties (two of them flips), 1 loss, 1 failure. Paper's win rate: 100·(3 + 3/2)/8 − 50 = +6.25.
const SCRIPT: Script[] = [
  ['better', 'better', 'aaaa', 'bb'], // win
  ['better', 'better', 'aaaaaaaa', 'bb'], // win
  ['better', 'tie', 'aaaa', 'bbbbbb'], // win; the orders disagree but do not flip
  ['better', 'worse', 'aa', 'bb'], // tie: a flip (the judge preferred Assistant 2 both times)
  ['worse', 'better', 'aaaaaa', 'bbbb'], // tie: a flip (Assistant 1 both times)
  ['tie', 'tie', 'aaaa', 'bbbb'], // tie
  ['worse', 'worse', '', 'bbbbbbbbbb'], // loss
  ['tie', 'garbage', 'aaaa', 'bb'], // failed: one reply of two did not parse
];

describe('statistics beside the win rate (scripted judge)', () => {
  const verdicts = judged(SCRIPT);
  const stats = winRateStatistics([{ model: 'stage-1', perBenchmark: [{ benchmark: 'vicuna', verdicts }] }]);
  const cell = stats.comparisons[0].benchmarks[0];

  it('the scripted judge gives the outcomes it was written for', () => {
    assert.deepEqual(
      verdicts.map((v) => v.outcome),
      ['win', 'win', 'win', 'tie', 'tie', 'tie', 'loss', 'failed'],
    );
  });

  it('position-bias rate: flips among the prompts judged in both orders (2 of 7)', () => {
    assert.deepEqual(cell.positionBias, { flips: 2, judgedBothOrders: 7, rate: 2 / 7 });
  });

  it('parse failures: prompts and unparsed replies', () => {
    assert.deepEqual(cell.parseFailures, { prompts: 1, replies: 1 });
    assert.equal(cell.reasks, undefined, 'no re-asks recorded, none reported');
  });

  it('mean answer lengths in characters, each side', () => {
    assert.equal(cell.meanChars.candidate, (4 + 8 + 4 + 2 + 6 + 4 + 0 + 4) / 8);
    assert.equal(cell.meanChars.baseline, (2 + 2 + 6 + 2 + 4 + 4 + 10 + 2) / 8);
    assert.equal(stats.lengthUnit, 'characters');
  });

  it('sign test on the decisive prompts: 3 wins, 1 loss → p = 2·(1 + 4)/16', () => {
    assert.deepEqual(cell.signTest, { wins: 3, losses: 1, pValue: 10 / 16 });
  });

  it('exact two-sided binomial p-values', () => {
    assert.equal(signTestPValue(7, 1), 18 / 256);
    assert.equal(signTestPValue(1, 7), 18 / 256);
    assert.equal(signTestPValue(10, 0), 2 / 1024);
    assert.equal(signTestPValue(0, 0), 1);
    assert.equal(signTestPValue(5, 5), 1, 'capped at 1');
    // Large n neither overflows nor underflows: 600 vs 400 is about 6.3 standard deviations from even.
    const p = signTestPValue(600, 400);
    const q = signTestPValue(1200, 800);
    assert.ok(q > 0 && q < 1e-15, String(q));
    assert.ok(p > 1e-11 && p < 1e-9, String(p));
    assert.equal(formatPValue(18 / 256), '0.070');
    assert.equal(formatPValue(0.625), '0.63');
    assert.equal(formatPValue(2 / 1024), '0.002');
    assert.equal(formatPValue(1e-5), '<0.001');
  });

  it('bootstrap interval: 3 wins and 1 loss → [−25, +50] (the exact resampling distribution, by hand)', () => {
    // The losses in a resample of 4 are Binomial(4, 1/4); win rate = 50 − 25k. P(k = 4) = 0.4%, P(k >= 3) = 5.1%: the
    // 2.5th percentile is k = 3 (−25); P(k = 0) = 31.6%: the 97.5th is k = 0 (+50).
    const outcomes: Outcome[] = ['win', 'win', 'win', 'loss'];
    assert.deepEqual(bootstrapInterval([outcomes], { resamples: 2000, level: 0.95, seed: 1 }), { low: -25, high: 50 });
    // Overall, each benchmark resampled on its own: mean of +50 (all wins) and 50 − 25k → 50 − 12.5k: [+12.5, +50].
    assert.deepEqual(bootstrapInterval([['win', 'win'], outcomes], { resamples: 2000, level: 0.95, seed: 1 }), {
      low: 12.5,
      high: 50,
    });
  });

  it('bootstrap interval: 50 wins, 50 losses → about ±1.96·5 points, around the paper win rate 0', () => {
    const outcomes: Outcome[] = [...Array(50).fill('win'), ...Array(50).fill('loss')];
    const { low, high } = bootstrapInterval([outcomes], { resamples: 2000, level: 0.95, seed: 7 });
    assert.ok(low >= -11.5 && low <= -8, `low ${low}`);
    assert.ok(high >= 8 && high <= 11.5, `high ${high}`);
  });

  it('with one benchmark, overall is that benchmark (one interval, not two draws)', () => {
    const { benchmark: _b, ...only } = cell;
    assert.deepEqual(stats.comparisons[0].overall, only);
  });

  it('is deterministic: same verdicts and seed, same numbers; each cell its own stream', () => {
    const again = winRateStatistics([{ model: 'stage-1', perBenchmark: [{ benchmark: 'vicuna', verdicts }] }]);
    assert.deepEqual(again, stats);
    const r = seededRandom(42);
    const s = seededRandom(42);
    for (let i = 0; i < 5; i++) assert.equal(r(), s());
    // Adding a model before it does not move this model's interval.
    const more = winRateStatistics([
      { model: 'stage-0', perBenchmark: [{ benchmark: 'vicuna', verdicts: verdicts.slice(0, 3) }] },
      { model: 'stage-1', perBenchmark: [{ benchmark: 'vicuna', verdicts }] },
    ]);
    assert.deepEqual(more.comparisons[1], stats.comparisons[0]);
  });

  it('overall pools the benchmarks, and the table shows every cell beside the paper win rate', () => {
    const second = judged([
      ['better', 'better', 'x', 'y'],
      ['worse', 'worse', 'x', 'y'],
    ]);
    const both = winRateStatistics([
      {
        model: 'stage-1',
        perBenchmark: [
          { benchmark: 'vicuna', verdicts },
          { benchmark: 'koala', verdicts: second },
        ],
      },
    ]);
    const overall = both.comparisons[0].overall;
    assert.equal(overall.prompts, 10);
    assert.deepEqual(overall.signTest, { wins: 4, losses: 2, pValue: (2 * (1 + 6 + 15)) / 64 });
    assert.deepEqual(overall.positionBias, { flips: 2, judgedBothOrders: 9, rate: 2 / 9 });

    const report = buildWinRateReport({
      judge: 'scripted',
      baseline: 'one-off',
      comparisons: [
        {
          model: 'stage-1',
          perBenchmark: [
            { benchmark: 'vicuna', counts: countOutcomes(verdicts) },
            { benchmark: 'koala', counts: countOutcomes(second) },
          ],
        },
      ],
    });
    const md = renderStatisticsMarkdown(report, both);
    const rows = md.trimEnd().split('\n').slice(4);
    assert.equal(rows.length, 3);
    assert.match(
      rows[0],
      /^\| stage-1 \| vicuna \| \+6\.3 \| \[[-+]\d+\.\d, [-+]\d+\.\d\] \| 3–1 \| 0\.63 \| 28\.6% \| 1\/1 \| 4\/4 \|$/,
    );
    assert.match(
      rows[1],
      /^\| stage-1 \| koala \| \+0\.0 \| \[-50\.0, \+50\.0\] \| 1–1 \| 1\.00 \| 0\.0% \| 0\/0 \| 1\/1 \|$/,
    );
    assert.match(rows[2], /^\| stage-1 \| \*\*overall\*\* \| \+3\.1 \| /);
  });

  it('counts re-asks where the stored verdicts record them', () => {
    const withReasks = verdicts.map((v, i) => ({ ...v, reasks: i % 2 }));
    const s = winRateStatistics([{ model: 'm', perBenchmark: [{ benchmark: 'b', verdicts: withReasks }] }]);
    assert.equal(s.comparisons[0].overall.reasks, 4);
  });
});
