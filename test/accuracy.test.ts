import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { countExactMatches, exactMatchAccuracy, isExactMatch } from '../activities/evaluate/accuracy';
import type { BenchmarkPrompt } from '../activities/datasets/benchmark-prompts';

const prompts: BenchmarkPrompt[] = [
  { id: 'a', instruction: 'Reverse the word.', input: 'bako', reference: 'okab' },
  { id: 'b', instruction: 'Add the two numbers.', input: '3 4', reference: '7' },
  { id: 'c', instruction: 'Write the word in uppercase.', input: 'tum', reference: 'TUM' },
  { id: 'd', instruction: 'Say something.', input: '' },
];

describe('exact-match accuracy', () => {
  it('normalises whitespace but keeps case, as the offline judge does', () => {
    assert.ok(isExactMatch('  okab \n', 'okab'));
    assert.ok(isExactMatch('1  2\t3', '1 2 3'));
    assert.ok(!isExactMatch('tum', 'TUM'));
    assert.ok(!isExactMatch('', '7'));
  });

  it('counts only prompts with a reference; a missing answer is wrong', () => {
    const answers = new Map([
      ['a', 'okab'],
      ['c', 'tum'],
      ['d', 'anything'],
    ]);
    assert.deepEqual(countExactMatches(prompts, answers), { correct: 1, checked: 3, accuracy: 1 / 3 });
  });

  it('gives every model its accuracy per benchmark and in total, or nothing without references', async () => {
    const answers: Record<string, Record<string, string>> = {
      'one-off': { a: 'okab', b: '7', c: 'TUM' },
      'stage-3': { a: 'bako', b: '7', c: 'TUM' },
    };
    const benchmarks = new Map([
      ['demo', prompts],
      ['prose', [{ id: 'x', instruction: 'Write a poem.', input: '' }]],
    ]);
    const result = await exactMatchAccuracy(['one-off', 'stage-3'], benchmarks, async (model) => {
      return new Map(Object.entries(answers[model]));
    });
    assert.deepEqual(Object.keys(result!['one-off'].benchmarks), ['demo']);
    assert.deepEqual(result!['one-off'].total, { correct: 3, checked: 3, accuracy: 1 });
    assert.deepEqual(result!['stage-3'].total, { correct: 2, checked: 3, accuracy: 2 / 3 });
    const none = await exactMatchAccuracy(['one-off'], new Map([['prose', benchmarks.get('prose')!]]), async () => {
      throw new Error('answers of a benchmark without references are not read');
    });
    assert.equal(none, undefined);
  });
});
