import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'mocha';
import {
  buildJudgeRequest,
  JUDGE_CRITERIA,
  JUDGE_DECODING,
  JUDGE_PROMPT_VERSION,
  JUDGE_SYSTEM_PROMPT,
  JUDGE_USER_TEMPLATE,
  judgeQuestion,
  judgeUserMessage,
} from '../activities/evaluate/judge-prompt';
import { buildWinRateReport, formatWinRate, renderWinRateMarkdown } from '../activities/results/report';
import {
  candidatePreference,
  decideOutcome,
  parseVerdict,
  verdictFromReplies,
  type Outcome,
  type Preference,
} from '../activities/results/verdict';
import { countOutcomes, summariseWinRates, winRate } from '../activities/results/win-rate';
import {
  editDistance,
  OFFLINE_JUDGE_LABEL,
  offlineJudgeReply,
  referenceScore,
} from '../activities/evaluate/offline-reference-judge';
import { InvalidDataError } from '../common/failures';

/** Judge replies for the two orders that make the candidate `p1` in order 1 and `p2` in order 2. */
function repliesFor(p1: Preference, p2: Preference): [string, string] {
  // Order 1: Assistant 1 = baseline, Assistant 2 = candidate. Order 2: Assistant 1 = candidate, Assistant 2 = baseline.
  const order1 = { better: '6 8', tie: '7 7', worse: '9 5' }[p1];
  const order2 = { better: '8 6', tie: '7 7', worse: '5 9' }[p2];
  return [order1, order2];
}

describe('judge prompt (PhasedSFT evaluation/eval.py)', () => {
  it('uses the exact system message and decoding settings', () => {
    assert.equal(
      JUDGE_SYSTEM_PROMPT,
      'You are a helpful and precise assistant for checking the quality of the answer.',
    );
    assert.deepEqual(JUDGE_DECODING, { model: 'gpt-4-0613', temperature: 0, top_p: 1, max_tokens: 256 });
    const request = buildJudgeRequest('Q', 'A1', 'A2');
    assert.equal(request.model, 'gpt-4-0613');
    assert.equal(request.temperature, 0);
    assert.equal(request.top_p, 1);
    assert.equal(request.max_tokens, 256);
    assert.deepEqual(request.messages[0], { role: 'system', content: JUDGE_SYSTEM_PROMPT });
    assert.equal(buildJudgeRequest('Q', 'A1', 'A2', { model: 'judge-x' }).model, 'judge-x');
  });

  it('lays out the user message exactly like the released template', () => {
    const expected =
      '[Question]\nWhat is 2+2?\n\n' +
      "[The Start of Assistant 1's Answer]\n4\n\n[The End of Assistant 1's Answer]\n\n" +
      "[The Start of Assistant 2's Answer]\nfive\n\n[The End of Assistant 2's Answer]\n\n" +
      '[System]\n' +
      'We would like to request your feedback on the performance of two AI assistants in response to the user question displayed above.\n' +
      'Please rate the helpfulness, relevance, accuracy, level of details of their responses. Each assistant receives an overall score on a scale of 1 to 10, where a higher score indicates better overall performance.\n' +
      'Please only output a single line containing only two values indicating the scores for Assistant 1 and 2, respectively. The two scores are separated by a space. Do not explain for your scores.' +
      '\n\n';
    assert.equal(judgeUserMessage('What is 2+2?', '4', 'five'), expected);
    assert.equal(buildJudgeRequest('What is 2+2?', '4', 'five').messages[1].content, expected);
    assert.ok(JUDGE_CRITERIA.endsWith('Do not explain for your scores.'));
  });

  it('contains each marker string once, answers in order', () => {
    const msg = judgeUserMessage('q', 'ANSWER-ONE', 'ANSWER-TWO');
    for (const marker of [
      '[Question]',
      "[The Start of Assistant 1's Answer]",
      "[The End of Assistant 1's Answer]",
      "[The Start of Assistant 2's Answer]",
      "[The End of Assistant 2's Answer]",
      '[System]',
    ]) {
      assert.equal(msg.split(marker).length, 2, marker);
    }
    assert.ok(msg.indexOf('ANSWER-ONE') < msg.indexOf("[The End of Assistant 1's Answer]"));
    assert.ok(msg.indexOf('ANSWER-TWO') > msg.indexOf("[The Start of Assistant 2's Answer]"));
  });

  it('keeps $ patterns and braces in answers literal', () => {
    const msg = judgeUserMessage('{question}', "$& $' {answer_2}", '$1');
    assert.ok(msg.startsWith("[Question]\n{question}\n\n[The Start of Assistant 1's Answer]\n$& $' {answer_2}\n\n"));
    assert.ok(msg.includes("[The Start of Assistant 2's Answer]\n$1\n\n"));
  });

  it('writes the question as "{instruction} Input: {input}" only when there is an input', () => {
    assert.equal(judgeQuestion('Sort the numbers.', '3 1 2'), 'Sort the numbers. Input: 3 1 2');
    assert.equal(judgeQuestion('Tell a joke.', ''), 'Tell a joke.');
    assert.equal(judgeQuestion('Tell a joke.'), 'Tell a joke.');
  });

  it('has a stable, hash-derived prompt version', () => {
    assert.match(JUDGE_PROMPT_VERSION, /^judge-pairwise-v1\+sha256:[0-9a-f]{16}$/);
    const expected = createHash('sha256')
      .update(JSON.stringify([JUDGE_SYSTEM_PROMPT, JUDGE_USER_TEMPLATE, JUDGE_CRITERIA]))
      .digest('hex')
      .slice(0, 16);
    assert.equal(JUDGE_PROMPT_VERSION, `judge-pairwise-v1+sha256:${expected}`);
    // Pin the value: every stored judgment and inputs hash carries it, so a change must be deliberate.
    assert.equal(JUDGE_PROMPT_VERSION, 'judge-pairwise-v1+sha256:cb3aa377e45cd3dc');
  });
});

describe('parseVerdict', () => {
  for (const [reply, s1, s2] of [
    ['8 9', 8, 9],
    ['8, 9', 8, 9],
    ['8,9', 8, 9],
    ['8.5 9', 8.5, 9],
    ['  8 9  ', 8, 9],
    ['\n\n 7 3\n', 7, 3],
    ['10 1\nAssistant 1 was more accurate.', 10, 1],
    ['８ ９', 8, 9], // full-width digits: NFKC, as the released script normalises
    ['9\t6', 9, 6],
  ] as const) {
    it(`accepts ${JSON.stringify(reply)}`, () => {
      assert.deepEqual(parseVerdict(reply), { ok: true, score1: s1, score2: s2 });
    });
  }
  for (const reply of [
    '8',
    '8 9 10',
    'Assistant 1: 8, Assistant 2: 9',
    'eight nine',
    '',
    '   ',
    'Scores:\n8 9',
    '8 nan',
    '-1 5',
    '0 7',
  ]) {
    it(`rejects ${JSON.stringify(reply)}`, () => {
      const parsed = parseVerdict(reply);
      assert.equal(parsed.ok, false);
      if (!parsed.ok) assert.ok(parsed.reason.length > 0);
    });
  }
});

describe('two-order verdict (paper.md table, from the candidate side)', () => {
  it('maps scores to preferences per order: order 1 shows the baseline first, order 2 the candidate first', () => {
    assert.equal(candidatePreference(1, 6, 8), 'better');
    assert.equal(candidatePreference(1, 8, 6), 'worse');
    assert.equal(candidatePreference(1, 7, 7), 'tie');
    assert.equal(candidatePreference(2, 8, 6), 'better');
    assert.equal(candidatePreference(2, 6, 8), 'worse');
    assert.equal(candidatePreference(2, 7.5, 7.5), 'tie');
  });

  const table: Array<[Preference, Preference, Outcome]> = [
    ['better', 'better', 'win'],
    ['better', 'tie', 'win'],
    ['tie', 'better', 'win'],
    ['tie', 'tie', 'tie'],
    ['better', 'worse', 'tie'],
    ['worse', 'better', 'tie'],
    ['worse', 'worse', 'loss'],
    ['worse', 'tie', 'loss'],
    ['tie', 'worse', 'loss'],
  ];
  for (const [p1, p2, outcome] of table) {
    it(`order 1 ${p1} × order 2 ${p2} → ${outcome}`, () => {
      assert.equal(decideOutcome(p1, p2), outcome);
      const [r1, r2] = repliesFor(p1, p2);
      const verdict = verdictFromReplies(r1, r2);
      assert.equal(verdict.outcome, outcome);
      assert.equal(verdict.order1, p1);
      assert.equal(verdict.order2, p2);
      assert.equal(verdict.positionInconsistent, p1 !== p2);
    });
  }

  it('is the baseline-side table read from the other side (a baseline win is a candidate loss)', () => {
    const flip = { better: 'worse', tie: 'tie', worse: 'better' } as const;
    const mirror = { win: 'loss', tie: 'tie', loss: 'win' } as const;
    for (const [p1, p2, outcome] of table)
      assert.equal(decideOutcome(flip[p1], flip[p2]), mirror[outcome as 'win' | 'tie' | 'loss']);
  });

  it('fails when either order does not parse, naming the order', () => {
    const one = verdictFromReplies('8', '8 6');
    assert.equal(one.outcome, 'failed');
    assert.match(one.reason ?? '', /^order 1: /);
    assert.equal(one.positionInconsistent, false);
    const two = verdictFromReplies('6 8', 'I cannot judge this.');
    assert.equal(two.outcome, 'failed');
    assert.match(two.reason ?? '', /^order 2: /);
    const both = verdictFromReplies('', '8 9 10');
    assert.equal(both.outcome, 'failed');
    assert.match(both.reason ?? '', /order 1: .*; order 2: /);
  });

  it('accepts the comma-separated reply the released parser rejects', () => {
    assert.equal(verdictFromReplies('6, 8', '8, 6').outcome, 'win');
  });
});

describe('win rate', () => {
  const outcomes = (win: number, tie: number, loss: number, failed: number) =>
    countOutcomes(
      ([] as Outcome[])
        .concat(
          Array<Outcome>(win).fill('win'),
          Array<Outcome>(tie).fill('tie'),
          Array<Outcome>(loss).fill('loss'),
          Array<Outcome>(failed).fill('failed'),
        )
        .map((outcome) => ({ outcome, positionInconsistent: false })),
    );

  it('all wins → +50, all losses → -50, all ties → 0', () => {
    assert.equal(winRate(outcomes(10, 0, 0, 0)), 50);
    assert.equal(winRate(outcomes(0, 0, 10, 0)), -50);
    assert.equal(winRate(outcomes(0, 10, 0, 0)), 0);
    assert.equal(winRate(outcomes(5, 0, 5, 0)), 0);
  });

  it('counts parse failures in N for neither side', () => {
    assert.equal(winRate(outcomes(8, 0, 0, 2)), 30); // 100 * 8/10 - 50
    assert.equal(winRate(outcomes(0, 2, 6, 2)), -40); // 100 * (0 + 1)/10 - 50
    assert.equal(winRate(outcomes(3, 2, 1, 4)), -10); // 100 * (3 + 1)/10 - 50
    assert.equal(winRate(outcomes(0, 0, 0, 5)), -50);
  });

  it('counts outcomes and order disagreements', () => {
    const verdicts = [
      verdictFromReplies(...repliesFor('better', 'better')),
      verdictFromReplies(...repliesFor('better', 'tie')),
      verdictFromReplies(...repliesFor('better', 'worse')),
      verdictFromReplies(...repliesFor('worse', 'worse')),
      verdictFromReplies('x', '8 9'),
    ];
    assert.deepEqual(countOutcomes(verdicts), { win: 2, tie: 1, loss: 1, failed: 1, n: 5, positionInconsistent: 2 });
  });

  it('averages benchmarks plainly, not weighted by size', () => {
    const summary = summariseWinRates([
      { benchmark: 'vicuna', counts: outcomes(10, 0, 0, 0) },
      { benchmark: 'koala', counts: outcomes(0, 100, 0, 0) },
    ]);
    assert.deepEqual(
      summary.benchmarks.map((b) => [b.benchmark, b.winRate]),
      [
        ['vicuna', 50],
        ['koala', 0],
      ],
    );
    assert.equal(summary.average, 25);
  });

  it('refuses an empty benchmark', () => {
    assert.throws(
      () => winRate(outcomes(0, 0, 0, 0), 'koala'),
      (err: unknown) => err instanceof InvalidDataError && /koala/.test(err.message),
    );
  });
});

describe('offline reference judge', () => {
  const question = 'Reverse the word. Input: bread';

  it('is labelled as not the paper judge', () => {
    assert.equal(OFFLINE_JUDGE_LABEL, "offline-reference-judge-v1 (not the paper's GPT-4 judge)");
  });

  it('gives 10 to an exact match after normalisation, and less to anything else', () => {
    assert.equal(referenceScore('daerb', 'daerb'), 10);
    assert.equal(referenceScore('15 54 56', '  15   54\n56 '), 10);
    assert.ok(referenceScore('HORSE', 'horse') < 10, 'case-sensitive by default');
    assert.equal(referenceScore('HORSE', 'horse', { caseSensitive: false }), 10);
    assert.equal(referenceScore('daerb', 'daerd'), 7.4); // one substitution in five characters: 1 + 8 * 0.8
    assert.equal(referenceScore('daerb', ''), 1);
    assert.equal(referenceScore('abc', 'xyz'), 1);
  });

  it('computes Levenshtein distance', () => {
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('same', 'same'), 0);
  });

  it('replies in the judge format, through the same parser and verdict', () => {
    const reply = offlineJudgeReply({ question, reference: 'daerb', answer1: 'daerb', answer2: 'bread' });
    assert.match(reply, /^\d+(\.\d)? \d+(\.\d)?$/);
    const parsed = parseVerdict(reply);
    assert.ok(parsed.ok);
    if (parsed.ok) {
      assert.equal(parsed.score1, 10);
      assert.ok(parsed.score2 < 10);
    }
  });

  it('is order-symmetric: swapping the answers swaps the scores, so the two orders never disagree', () => {
    const cases = [
      ['daerb', 'daerb', 'bread'],
      ['2 5 7', '2 5 7', '2 7 5'],
      ['["red", "cat"]', '["red","cat"]', '["red", "cat"]'],
      ['x', 'yyyy', ''],
    ];
    for (const [reference, a, b] of cases) {
      const r1 = offlineJudgeReply({ question, reference, answer1: a, answer2: b });
      const r2 = offlineJudgeReply({ question, reference, answer1: b, answer2: a });
      assert.equal(r1.split(' ').reverse().join(' '), r2);
      // Order 1 shows the baseline (a) first, order 2 the candidate (b) first.
      const verdict = verdictFromReplies(r1, r2);
      assert.equal(verdict.positionInconsistent, false);
    }
  });

  it('candidate with the right answer wins, with the wrong one loses, equal answers tie', () => {
    const reply = (answer1: string, answer2: string) =>
      offlineJudgeReply({ question, reference: 'daerb', answer1, answer2 });
    // baseline wrong, candidate right
    assert.equal(verdictFromReplies(reply('bread', 'daerb'), reply('daerb', 'bread')).outcome, 'win');
    assert.equal(verdictFromReplies(reply('daerb', 'bread'), reply('bread', 'daerb')).outcome, 'loss');
    assert.equal(verdictFromReplies(reply('daerb', 'daerb'), reply('daerb', 'daerb')).outcome, 'tie');
  });
});

describe('win-rate report', () => {
  const counts = (win: number, tie: number, loss: number, failed: number, positionInconsistent = 0) => ({
    win,
    tie,
    loss,
    failed,
    n: win + tie + loss + failed,
    positionInconsistent,
  });

  it('builds JSON and a Markdown table with signed one-decimal win rates', () => {
    const report = buildWinRateReport({
      judge: 'gpt-4-0613',
      judgePromptVersion: JUDGE_PROMPT_VERSION,
      baseline: 'one-off',
      comparisons: [
        {
          model: 'stage-1',
          perBenchmark: [
            { benchmark: 'vicuna', counts: counts(30, 20, 28, 2, 11) },
            { benchmark: 'koala', counts: counts(60, 40, 80, 0, 20) },
          ],
        },
        {
          model: 'stage-3',
          perBenchmark: [
            { benchmark: 'vicuna', counts: counts(40, 20, 20, 0) },
            { benchmark: 'koala', counts: counts(60, 60, 60, 0) },
          ],
        },
      ],
    });
    assert.deepEqual(report.benchmarks, ['vicuna', 'koala']);
    assert.equal(report.comparisons[0].baseline, 'one-off');
    assert.deepEqual(report.comparisons[0].totals, counts(90, 60, 108, 2, 31));
    // stage-1: vicuna 100 * 40/80 - 50 = 0; koala 100 * 80/180 - 50 = -5.555...
    assert.equal(report.comparisons[0].benchmarks[0].winRate, 0);
    const md = renderWinRateMarkdown(report);
    const lines = md.trimEnd().split('\n');
    assert.equal(lines[0], `Judge: gpt-4-0613 (prompt ${JUDGE_PROMPT_VERSION}). Rule: ${report.rule}.`);
    assert.equal(lines[2], '| Model vs one-off | vicuna | koala | Average | W/T/L/F | Orders disagree |');
    assert.equal(lines[4], '| stage-1 | +0.0 | -5.6 | -2.8 | 90/60/108/2 | 31 |');
    assert.equal(lines[5], '| stage-3 | +12.5 | +0.0 | +6.3 | 100/80/80/0 | 0 |');
    assert.deepEqual(JSON.parse(JSON.stringify(report)), report);
  });

  it('names the offline judge in the header', () => {
    const report = buildWinRateReport({
      judge: OFFLINE_JUDGE_LABEL,
      baseline: 'one-off',
      comparisons: [{ model: 'stage-2', perBenchmark: [{ benchmark: 'heldout', counts: counts(1, 0, 0, 0) }] }],
    });
    assert.ok(renderWinRateMarkdown(report).startsWith(`Judge: ${OFFLINE_JUDGE_LABEL}. Rule: `));
  });

  it('formats signs', () => {
    assert.equal(formatWinRate(3.84), '+3.8');
    assert.equal(formatWinRate(-1.25), '-1.3');
    assert.equal(formatWinRate(-0.04), '+0.0');
    assert.equal(formatWinRate(0), '+0.0');
    assert.equal(formatWinRate(50), '+50.0');
  });
});
