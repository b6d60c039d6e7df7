import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'mocha';
import { parseAlpaca, parseBenchmark } from '../activities/datasets/parse';
import { InvalidDataError } from '../common/failures';

/** Asserts `fn` throws an InvalidDataError whose message matches and whose `where` has these fields. */
function throwsInvalid(fn: () => unknown, message: RegExp, where: { file?: string; line?: number; field?: string }) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidDataError, `not an InvalidDataError: ${String(err)}`);
    assert.match(err.message, message);
    for (const [key, value] of Object.entries(where)) assert.equal(err.where[key as keyof typeof where], value, key);
    return true;
  });
}

const jsonl = (...rows: unknown[]) =>
  rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';

describe('parseAlpaca', () => {
  it('reads JSONL with blank lines; ids from the row or L<line>; input defaults to ""', () => {
    const text = jsonl(
      { instruction: 'Copy the word.', input: 'cat', output: 'cat' },
      '',
      { instruction: 'Tell a joke.', output: 'Knock knock.', id: 'j1', family: 'jokes' },
      '   ',
      { instruction: 'Count.', input: null, output: '3', id: 7 },
    );
    assert.deepEqual(parseAlpaca(text, 'train.jsonl'), [
      { id: 'L1', instruction: 'Copy the word.', input: 'cat', output: 'cat' },
      { id: 'j1', instruction: 'Tell a joke.', input: '', output: 'Knock knock.', extra: { family: 'jokes' } },
      { id: '7', instruction: 'Count.', input: '', output: '3' },
    ]);
  });

  it('reads a JSON array; ids I<index>; CRLF and a BOM are fine', () => {
    const text =
      '\ufeff[\r\n  {"instruction": "A", "input": "", "output": "a"},\r\n  {"instruction": "B", "output": "b", "id": "x"}\r\n]\r\n';
    assert.deepEqual(parseAlpaca(text, 'alpaca.json'), [
      { id: 'I0', instruction: 'A', input: '', output: 'a' },
      { id: 'x', instruction: 'B', input: '', output: 'b' },
    ]);
  });

  it('reads JSONL with CRLF line ends', () => {
    const rows = parseAlpaca('{"instruction":"A","output":"a"}\r\n{"instruction":"B","output":"b"}\r\n', 't.jsonl');
    assert.deepEqual(
      rows.map((r) => r.id),
      ['L1', 'L2'],
    );
  });

  it('reads the demo dataset', () => {
    const rows = parseAlpaca(readFileSync(join(__dirname, '..', 'data', 'demo', 'train.jsonl'), 'utf8'), 'train.jsonl');
    assert.equal(rows.length, 1800);
    assert.equal(rows[0].id, 'train-0001');
    assert.ok(rows.every((r) => typeof r.extra?.family === 'string'));
  });

  const good = { instruction: 'Copy.', input: 'a', output: 'a' };

  it('invalid JSON names the file and line', () => {
    throwsInvalid(
      () => parseAlpaca(jsonl(good, good, '{"instruction": "x", }'), 'train.jsonl'),
      /^train\.jsonl line 3: invalid JSON \(.+\)$/,
      {
        file: 'train.jsonl',
        line: 3,
      },
    );
  });

  it('a line that is not an object names the line', () => {
    throwsInvalid(
      () => parseAlpaca(jsonl(good, '[1, 2]'), 'train.jsonl'),
      /^train\.jsonl line 2: expected a JSON object, found an array of 2 items$/,
      { line: 2 },
    );
    throwsInvalid(() => parseAlpaca(jsonl('null'), 'train.jsonl'), /line 1: expected a JSON object, found null/, {
      line: 1,
    });
  });

  it('missing required fields name the line and field', () => {
    throwsInvalid(
      () => parseAlpaca(jsonl(good, good, { instruction: 'x', input: '' }), 'train.jsonl'),
      /^train\.jsonl line 3: missing required field "output"$/,
      { file: 'train.jsonl', line: 3, field: 'output' },
    );
    throwsInvalid(
      () => parseAlpaca(jsonl({ output: 'x' }), 'train.jsonl'),
      /line 1: missing required field "instruction"/,
      {
        line: 1,
        field: 'instruction',
      },
    );
  });

  it('wrong types and empty instructions name the line and field', () => {
    throwsInvalid(
      () => parseAlpaca(jsonl(good, good, good, { instruction: 'x', input: 5, output: 'y' }), 'train.jsonl'),
      /^train\.jsonl line 4: field "input" must be a string, found a number$/,
      { line: 4, field: 'input' },
    );
    throwsInvalid(
      () => parseAlpaca(jsonl({ instruction: 'x', output: ['y'] }), 'train.jsonl'),
      /line 1: field "output" must be a string, found an array of 1 item$/,
      {
        field: 'output',
      },
    );
    throwsInvalid(
      () => parseAlpaca(jsonl({ instruction: '  ', output: 'y' }), 'train.jsonl'),
      /line 1: field "instruction" must not be empty, found only spaces$/,
      {
        field: 'instruction',
      },
    );
    throwsInvalid(
      () => parseAlpaca(jsonl({ instruction: 'x', output: 'y', id: {} }), 'train.jsonl'),
      /line 1: field "id" must be a non-empty string or a number, found an object$/,
      {
        field: 'id',
      },
    );
  });

  it('duplicate ids name both lines', () => {
    throwsInvalid(
      () => parseAlpaca(jsonl({ ...good, id: 'a' }, good, { ...good, id: 'a' }), 'train.jsonl'),
      /^train\.jsonl line 3: duplicate id in field "id" \(first used on line 1\)$/,
      { line: 3, field: 'id' },
    );
    // A given id may not collide with a generated one either.
    throwsInvalid(
      () => parseAlpaca(jsonl(good, { ...good, id: 'L1' }), 'train.jsonl'),
      /line 2: duplicate id in field "id" \(first used on line 1\)/,
      {
        line: 2,
      },
    );
  });

  it('an empty dataset is an error', () => {
    throwsInvalid(() => parseAlpaca('', 'train.jsonl'), /^train\.jsonl: dataset is empty$/, { file: 'train.jsonl' });
    throwsInvalid(() => parseAlpaca('\n  \n\n', 'train.jsonl'), /^train\.jsonl: dataset is empty$/, {
      file: 'train.jsonl',
    });
    throwsInvalid(() => parseAlpaca('[]', 'alpaca.json'), /^alpaca\.json: dataset is empty$/, { file: 'alpaca.json' });
  });

  it('JSON-array errors name the element line', () => {
    const text =
      '[\n  {"instruction": "A", "output": "a"},\n  {"instruction": "B, [x]", "output": "b"},\n  {"instruction": "C"}\n]';
    throwsInvalid(() => parseAlpaca(text, 'alpaca.json'), /^alpaca\.json line 4: missing required field "output"$/, {
      line: 4,
      field: 'output',
    });
    throwsInvalid(
      () => parseAlpaca('[\n{"instruction": "A", "output": "a"},\n 3\n]', 'alpaca.json'),
      /line 3: item 1 must be a JSON object, found a number/,
      {
        line: 3,
      },
    );
  });

  it('an unparseable JSON array names the file (and the line when the parser gives a position)', () => {
    throwsInvalid(
      () => parseAlpaca('[\n{"instruction": "A",}\n]', 'alpaca.json'),
      /^alpaca\.json( line 2)?: invalid JSON \(/,
      {
        file: 'alpaca.json',
      },
    );
  });
});

describe('parseBenchmark', () => {
  it('Vicuna: text + question_id', () => {
    const text = jsonl({ question_id: 1, text: 'How can I improve my time management skills?', category: 'generic' });
    assert.deepEqual(parseBenchmark(text, 'vicuna_test_set.jsonl', 'vicuna'), [
      { id: '1', instruction: 'How can I improve my time management skills?', input: '' },
    ]);
  });

  it('Koala: prompt + id', () => {
    const text = jsonl({ id: 'koala_1', prompt: 'Write a haiku.' });
    assert.deepEqual(parseBenchmark(text, 'koala_test_set.jsonl', 'koala'), [
      { id: 'koala_1', instruction: 'Write a haiku.', input: '' },
    ]);
  });

  it('Self-Instruct: instruction + instances[0].input, instances[0].output as the reference', () => {
    const text = jsonl(
      {
        id: 'user_oriented_task_0',
        motivation_app: 'Grammarly',
        instruction: 'Fix the grammar.',
        instances: [{ input: 'me go', output: 'I go.' }],
      },
      { id: 'user_oriented_task_1', instruction: 'Tell a joke.', instances: [{ input: '', output: 'Knock knock.' }] },
    );
    assert.deepEqual(parseBenchmark(text, 'sinstruct_test_set.jsonl', 'sinstruct'), [
      { id: 'user_oriented_task_0', instruction: 'Fix the grammar.', input: 'me go', reference: 'I go.' },
      { id: 'user_oriented_task_1', instruction: 'Tell a joke.', input: '', reference: 'Knock knock.' },
    ]);
    throwsInvalid(
      () =>
        parseBenchmark(
          jsonl({ id: 'a', instruction: 'x', instances: [{ input: 'a' }, { input: 'b' }] }),
          's.jsonl',
          'sinstruct',
        ),
      /^s\.jsonl line 1: field "instances" must be an array holding exactly one object, found an array of 2 items$/,
      { line: 1, field: 'instances' },
    );
    throwsInvalid(
      () => parseBenchmark(jsonl({ id: 'a', instruction: 'x', instances: [{ input: 3 }] }), 's.jsonl', 'sinstruct'),
      /line 1: field "instances\[0\]\.input" must be a string/,
      { field: 'instances[0].input' },
    );
  });

  it('WizardLM: Instruction + idx', () => {
    const text = jsonl({ idx: 1, Skill: 'Math', Difficulty: 1, Instruction: 'What is 2+2?' });
    assert.deepEqual(parseBenchmark(text, 'wizardlm_test_set.jsonl', 'wizardlm'), [
      { id: '1', instruction: 'What is 2+2?', input: '' },
    ]);
  });

  it('Anthropic HH and OASST: instruction + input + id', () => {
    for (const name of ['anthropic', 'oasst']) {
      const text = jsonl(
        { id: 3, instruction: 'Summarise.', input: 'Long text.' },
        { id: 4, instruction: 'Hi?', input: '' },
      );
      assert.deepEqual(parseBenchmark(text, `${name}_test_set.jsonl`, name), [
        { id: '3', instruction: 'Summarise.', input: 'Long text.' },
        { id: '4', instruction: 'Hi?', input: '' },
      ]);
    }
  });

  it('a known format requires its own prompt field', () => {
    throwsInvalid(
      () => parseBenchmark(jsonl({ question_id: 1, prompt: 'x' }), 'vicuna.jsonl', 'vicuna'),
      /^vicuna\.jsonl line 1: missing required field "text"$/,
      { line: 1, field: 'text' },
    );
  });

  it('matches known names as substrings, as the released scripts match file names', () => {
    const text = jsonl({ question_id: 9, text: 'Q' });
    assert.deepEqual(parseBenchmark(text, 'v.jsonl', 'Vicuna-80'), [{ id: '9', instruction: 'Q', input: '' }]);
  });

  it('other names: first present prompt field, reference from output / reference / answer, ids or L<line>', () => {
    const text = jsonl(
      { instruction: 'Reverse the word.', input: 'bread', output: 'daerb', id: 'heldout-001' },
      { prompt: 'P', reference: 'R' },
      { text: 'T', answer: 'A', idx: 5 },
      { Instruction: 'I', question_id: 'q' },
    );
    assert.deepEqual(parseBenchmark(text, 'heldout.jsonl', 'heldout'), [
      { id: 'heldout-001', instruction: 'Reverse the word.', input: 'bread', reference: 'daerb' },
      { id: 'L2', instruction: 'P', input: '', reference: 'R' },
      { id: '5', instruction: 'T', input: '', reference: 'A' },
      { id: 'q', instruction: 'I', input: '' },
    ]);
    throwsInvalid(
      () => parseBenchmark(jsonl({ question: 'x' }), 'mine.jsonl', 'mine'),
      /^mine\.jsonl line 1: missing a prompt field \(one of "instruction", "Instruction", "prompt", "text", or a "messages" or "conversations" list of turns\)$/,
      { line: 1 },
    );
    throwsInvalid(
      () => parseBenchmark(jsonl({ prompt: 'x', reference: 3 }), 'mine.jsonl', 'mine'),
      /line 1: field "reference" must be a string/,
      {
        field: 'reference',
      },
    );
  });

  it('reads a JSON array too, with I<index> ids', () => {
    assert.deepEqual(parseBenchmark('[{"prompt": "a"}, {"prompt": "b"}]', 'k.json', 'custom'), [
      { id: 'I0', instruction: 'a', input: '' },
      { id: 'I1', instruction: 'b', input: '' },
    ]);
  });

  it('reads the demo held-out split with references', () => {
    const prompts = parseBenchmark(
      readFileSync(join(__dirname, '..', 'data', 'demo', 'heldout.jsonl'), 'utf8'),
      'heldout.jsonl',
      'heldout',
    );
    assert.equal(prompts.length, 96);
    assert.ok(prompts.every((p) => p.reference !== undefined && p.id.startsWith('heldout-')));
  });

  it('same error style: invalid JSON, duplicate ids, empty', () => {
    throwsInvalid(
      () => parseBenchmark(jsonl({ text: 'a', question_id: 1 }, 'oops'), 'vicuna.jsonl', 'vicuna'),
      /^vicuna\.jsonl line 2: invalid JSON/,
      {
        line: 2,
      },
    );
    throwsInvalid(
      () =>
        parseBenchmark(jsonl({ text: 'a', question_id: 1 }, { text: 'b', question_id: 1 }), 'vicuna.jsonl', 'vicuna'),
      /line 2: duplicate id in field "question_id" \(first used on line 1\)/,
      { line: 2, field: 'question_id' },
    );
    throwsInvalid(() => parseBenchmark('\n', 'koala.jsonl', 'koala'), /^koala\.jsonl: dataset is empty$/, {
      file: 'koala.jsonl',
    });
  });
});
