import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'mocha';
import type { AlpacaRow } from '../activities/datasets/rows';
import { readAlpaca } from './helpers/read-text';
import {
  buildScoreMessages,
  scorePromptFor,
  SCORE_DECODING,
  SCORE_PROMPT_SHA256,
  SCORE_PROMPT_TEMPLATE,
} from '../activities/score/score-prompt';
import {
  difficultyFeatures,
  OFFLINE_SCORER_LABEL,
  offlineHeuristicScore,
} from '../activities/score/offline-heuristic-scorer';
import { parseScore } from '../activities/score/score-answers';
import { scoredText } from '../activities/datasets/rows';
import { scoreRequest } from '../activities/score/score-answers';

const LEVELS = ['easy', 'medium', 'hard'] as const;

function demoRows(split: 'train' | 'heldout'): Promise<AlpacaRow[]> {
  const file = `${split}.jsonl`;
  return readAlpaca(readFileSync(join(__dirname, '..', 'data', 'demo', file), 'utf8'), file);
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

describe('score prompt', () => {
  it('hashes the template with sha256, stable across builds', () => {
    assert.equal(SCORE_PROMPT_SHA256, createHash('sha256').update(SCORE_PROMPT_TEMPLATE, 'utf8').digest('hex'));
    assert.match(SCORE_PROMPT_SHA256, /^[0-9a-f]{64}$/);
    // Pin the value: a change to the template must be deliberate (and changes every stored score's provenance).
    assert.equal(SCORE_PROMPT_SHA256, 'ecc1823bda007a797d3274227331415f85933243ce16ede265871f686db2d09f');
  });

  it('asks for a bare 1-5 number, higher = harder, with one decimal allowed', () => {
    assert.match(SCORE_PROMPT_TEMPLATE, /scale from 1 to 5, where higher means harder/);
    assert.match(SCORE_PROMPT_TEMPLATE, /one decimal place/);
    assert.match(SCORE_PROMPT_TEMPLATE, /bare number only/);
    assert.equal(SCORE_PROMPT_TEMPLATE.split('{text}').length, 2);
  });

  it('scores the instruction plus "\\n" + input when there is an input', () => {
    assert.equal(scoredText({ instruction: 'Sort the numbers.', input: '3 1 2' }), 'Sort the numbers.\n3 1 2');
    assert.equal(scoredText({ instruction: 'Tell a joke.', input: '' }), 'Tell a joke.');
    assert.equal(scoredText({ instruction: 'Tell a joke.' }), 'Tell a joke.');
    const [message] = buildScoreMessages('Sort the numbers.', '3 $& 2');
    assert.equal(message.role, 'user');
    assert.ok(message.content.includes('[Instruction]\nSort the numbers.\n3 $& 2\n[End of Instruction]'));
  });

  it('uses temperature 0, one sample, gpt-4-0613 by default', () => {
    assert.deepEqual(SCORE_DECODING, { model: 'gpt-4-0613', temperature: 0, n: 1, max_tokens: 8 });
    // The request both the online pool and the Batch API send: the model given, the paper-scale prompt.
    const request = scoreRequest('other', { id: '1', instruction: 'x', input: '', output: '' });
    assert.deepEqual(request, {
      model: 'other',
      messages: buildScoreMessages('x'),
      temperature: 0,
      n: 1,
      max_tokens: 8,
    });
    assert.equal(scorePromptFor('alpaca').sha256, SCORE_PROMPT_SHA256);
  });
});

describe('parseScore', () => {
  for (const [reply, score] of [
    ['3', 3],
    ['3.5', 3.5],
    ['4.25', 4.25],
    ['1', 1],
    ['5', 5],
    ['5.0', 5],
    ['1.00', 1],
    ['  2.5\n', 2.5],
    ['\n4\n\n', 4],
    ['3.', 3],
    ['3.5.', 3.5],
    [' 4.25. \n', 4.25],
    // The released scores: means of several ratings.
    ['3.125', 3.125],
    ['4.125', 4.125],
    ['3.5625', 3.5625],
    ['4.166666666666667', 4.166666666666667],
    ['1.0000000000000002', 1.0000000000000002],
  ] as const) {
    it(`accepts ${JSON.stringify(reply)}`, () => assert.deepEqual(parseScore(reply), { ok: true, score }));
  }
  for (const reply of [
    '',
    '  ',
    '0.5',
    '0',
    '5.5',
    '6',
    '5.01',
    '5.000000001',
    '0.99999',
    '4.1666666666666666666666',
    '-3',
    '+3',
    '.5',
    '3..',
    'three',
    'Score: 3',
    '3/5',
    '3 out of 5',
    '3\n4',
    '3.5 (moderate)',
    '"3"',
    '3,5',
    '1e0',
  ]) {
    it(`rejects ${JSON.stringify(reply)}`, () => {
      const parsed = parseScore(reply);
      assert.equal(parsed.ok, false);
      if (!parsed.ok) assert.ok(parsed.reason.length > 0);
    });
  }
});

describe('offline heuristic scorer', () => {
  it('is labelled as not the paper scorer', () => {
    assert.equal(OFFLINE_SCORER_LABEL, "offline-heuristic-v1 (not the paper's GPT-4 scorer)");
  });

  it('returns a one-decimal score in [1, 5], deterministically', () => {
    const rows = [
      { instruction: 'Copy the word.', input: 'cat', output: 'cat' },
      { instruction: 'x' },
      {
        instruction:
          'First explain why, then calculate step by step and format the result as a JSON table: 12 + 34 * 56 / 78 - 9 = ?, then compare and prove it.',
        input: '1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20',
        output: 'x'.repeat(5000),
      },
    ];
    for (const row of rows) {
      const score = offlineHeuristicScore(row);
      assert.ok(score >= 1 && score <= 5, String(score));
      assert.equal(Math.round(score * 10) / 10, score);
      assert.equal(offlineHeuristicScore({ ...row }), score);
    }
    assert.equal(offlineHeuristicScore(rows[2]), 5);
  });

  it('counts arithmetic operators between operands, not hyphens in words', () => {
    assert.equal(difficultyFeatures({ instruction: 'Compute 3 + 4 * 2.' }).operators, 0.5);
    assert.equal(difficultyFeatures({ instruction: 'Write a well-known e-mail.' }).operators, 0);
  });

  for (const split of ['train', 'heldout'] as const) {
    it(`ranks the demo families easy < medium < hard (${split} split)`, async () => {
      const byFamily = new Map<string, { level: string; scores: number[] }>();
      for (const row of await demoRows(split)) {
        const family = String(row.extra?.family);
        const level = String(row.extra?.level);
        const entry = byFamily.get(family) ?? { level, scores: [] };
        entry.scores.push(offlineHeuristicScore(row));
        byFamily.set(family, entry);
      }
      assert.equal(byFamily.size, 12);
      const families = [...byFamily.values()].map((f) => ({
        level: LEVELS.indexOf(f.level as never),
        mean: mean(f.scores),
      }));
      // Every family of a lower level has a lower mean score than every family of a higher level.
      for (const a of families) {
        for (const b of families) {
          if (a.level < b.level) assert.ok(a.mean < b.mean, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
        }
      }
      // Spearman correlation between intended level and family mean (ties by average rank).
      const rank = (xs: number[]) =>
        xs.map((x) => xs.filter((y) => y < x).length + (xs.filter((y) => y === x).length + 1) / 2);
      const rl = rank(families.map((f) => f.level));
      const rm = rank(families.map((f) => f.mean));
      const cov = (x: number[], y: number[]) => mean(x.map((v, i) => (v - mean(x)) * (y[i] - mean(y))));
      const rho = cov(rl, rm) / Math.sqrt(cov(rl, rl) * cov(rm, rm));
      assert.ok(rho > 0.8, `spearman ${rho}`);
    });
  }

  it('puts the demo levels on the default stage cuts (easy < 1.5 <= medium < 3.5 <= hard)', async () => {
    for (const row of await demoRows('train')) {
      const score = offlineHeuristicScore(row);
      const level = row.extra?.level;
      if (level === 'easy') assert.ok(score < 1.5, `${row.id} ${score}`);
      if (level === 'medium') assert.ok(score >= 1.5 && score < 3.5, `${row.id} ${score}`);
      if (level === 'hard') assert.ok(score >= 3.5, `${row.id} ${score}`);
    }
  });
});
