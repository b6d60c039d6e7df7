import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'mocha';
import { readAlpaca, readBenchmark } from './helpers/read-text';
import { InvalidDataError } from '../common/failures';

/** Asserts `fn` throws an InvalidDataError whose message matches and whose `where` has these fields. */
async function throwsInvalid(
  fn: () => Promise<unknown>,
  message: RegExp,
  where: { file?: string; line?: number; field?: string },
) {
  await assert.rejects(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidDataError, `not an InvalidDataError: ${String(err)}`);
    assert.match(err.message, message);
    for (const [key, value] of Object.entries(where)) assert.equal(err.where[key as keyof typeof where], value, key);
    return true;
  });
}

const jsonl = (...rows: unknown[]) =>
  rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';

describe('reading an Alpaca dataset', () => {
  it('reads JSONL with blank lines; ids from the row or L<line>; input defaults to ""', async () => {
    const text = jsonl(
      { instruction: 'Copy the word.', input: 'cat', output: 'cat' },
      '',
      { instruction: 'Tell a joke.', output: 'Knock knock.', id: 'j1', family: 'jokes' },
      '   ',
      { instruction: 'Count.', input: null, output: '3', id: 7 },
    );
    assert.deepEqual(await readAlpaca(text, 'train.jsonl'), [
      { id: 'L1', instruction: 'Copy the word.', input: 'cat', output: 'cat' },
      { id: 'j1', instruction: 'Tell a joke.', input: '', output: 'Knock knock.', extra: { family: 'jokes' } },
      { id: '7', instruction: 'Count.', input: '', output: '3' },
    ]);
  });

  it('reads a JSON array; ids I<index>; CRLF and a BOM are fine', async () => {
    const text =
      '\ufeff[\r\n  {"instruction": "A", "input": "", "output": "a"},\r\n  {"instruction": "B", "output": "b", "id": "x"}\r\n]\r\n';
    assert.deepEqual(await readAlpaca(text, 'alpaca.json'), [
      { id: 'I0', instruction: 'A', input: '', output: 'a' },
      { id: 'x', instruction: 'B', input: '', output: 'b' },
    ]);
  });

  it('reads JSONL with CRLF line ends', async () => {
    const rows = await readAlpaca(
      '{"instruction":"A","output":"a"}\r\n{"instruction":"B","output":"b"}\r\n',
      't.jsonl',
    );
    assert.deepEqual(
      rows.map((r) => r.id),
      ['L1', 'L2'],
    );
  });

  it('reads the demo dataset', async () => {
    const rows = await readAlpaca(
      readFileSync(join(__dirname, '..', 'data', 'demo', 'train.jsonl'), 'utf8'),
      'train.jsonl',
    );
    assert.equal(rows.length, 1800);
    assert.equal(rows[0].id, 'train-0001');
    assert.ok(rows.every((r) => typeof r.extra?.family === 'string'));
  });

  const good = { instruction: 'Copy.', input: 'a', output: 'a' };

  it('invalid JSON names the file and line', async () => {
    await throwsInvalid(
      () => readAlpaca(jsonl(good, good, '{"instruction": "x", }'), 'train.jsonl'),
      /^train\.jsonl line 3: invalid JSON \(.+\)$/,
      {
        file: 'train.jsonl',
        line: 3,
      },
    );
  });

  it('a line that is not an object names the line', async () => {
    await throwsInvalid(
      () => readAlpaca(jsonl(good, '[1, 2]'), 'train.jsonl'),
      /^train\.jsonl line 2: expected a JSON object, found an array of 2 items$/,
      { line: 2 },
    );
    await throwsInvalid(() => readAlpaca(jsonl('null'), 'train.jsonl'), /line 1: expected a JSON object, found null/, {
      line: 1,
    });
  });

  it('missing required fields name the line and field', async () => {
    await throwsInvalid(
      () => readAlpaca(jsonl(good, good, { instruction: 'x', input: '' }), 'train.jsonl'),
      /^train\.jsonl line 3: missing required field "output"$/,
      { file: 'train.jsonl', line: 3, field: 'output' },
    );
    await throwsInvalid(
      () => readAlpaca(jsonl({ output: 'x' }), 'train.jsonl'),
      /line 1: missing required field "instruction"/,
      {
        line: 1,
        field: 'instruction',
      },
    );
  });

  it('wrong types and empty instructions name the line and field', async () => {
    await throwsInvalid(
      () => readAlpaca(jsonl(good, good, good, { instruction: 'x', input: 5, output: 'y' }), 'train.jsonl'),
      /^train\.jsonl line 4: field "input" must be a string, found a number$/,
      { line: 4, field: 'input' },
    );
    await throwsInvalid(
      () => readAlpaca(jsonl({ instruction: 'x', output: ['y'] }), 'train.jsonl'),
      /line 1: field "output" must be a string, found an array of 1 item$/,
      {
        field: 'output',
      },
    );
    await throwsInvalid(
      () => readAlpaca(jsonl({ instruction: '  ', output: 'y' }), 'train.jsonl'),
      /line 1: field "instruction" must not be empty, found only spaces$/,
      {
        field: 'instruction',
      },
    );
    await throwsInvalid(
      () => readAlpaca(jsonl({ instruction: 'x', output: 'y', id: {} }), 'train.jsonl'),
      /line 1: field "id" must be a non-empty string or a number, found an object$/,
      {
        field: 'id',
      },
    );
  });

  it('duplicate ids name both lines', async () => {
    await throwsInvalid(
      () => readAlpaca(jsonl({ ...good, id: 'a' }, good, { ...good, id: 'a' }), 'train.jsonl'),
      /^train\.jsonl line 3: duplicate id in field "id" \(first used on line 1\)$/,
      { line: 3, field: 'id' },
    );
    // A given id may not collide with a generated one either.
    await throwsInvalid(
      () => readAlpaca(jsonl(good, { ...good, id: 'L1' }), 'train.jsonl'),
      /line 2: duplicate id in field "id" \(first used on line 1\)/,
      {
        line: 2,
      },
    );
  });

  it('an empty dataset is an error', async () => {
    await throwsInvalid(() => readAlpaca('', 'train.jsonl'), /^train\.jsonl: dataset is empty$/, {
      file: 'train.jsonl',
    });
    await throwsInvalid(() => readAlpaca('\n  \n\n', 'train.jsonl'), /^train\.jsonl: dataset is empty$/, {
      file: 'train.jsonl',
    });
    await throwsInvalid(() => readAlpaca('[]', 'alpaca.json'), /^alpaca\.json: dataset is empty$/, {
      file: 'alpaca.json',
    });
  });

  it('JSON-array errors name the element line', async () => {
    const text =
      '[\n  {"instruction": "A", "output": "a"},\n  {"instruction": "B, [x]", "output": "b"},\n  {"instruction": "C"}\n]';
    await throwsInvalid(
      () => readAlpaca(text, 'alpaca.json'),
      /^alpaca\.json line 4: missing required field "output"$/,
      {
        line: 4,
        field: 'output',
      },
    );
    await throwsInvalid(
      () => readAlpaca('[\n{"instruction": "A", "output": "a"},\n 3\n]', 'alpaca.json'),
      /line 3: item 1 must be a JSON object, found a number/,
      {
        line: 3,
      },
    );
  });

  it('an unparseable JSON array names the file (and the line when the parser gives a position)', async () => {
    await throwsInvalid(
      () => readAlpaca('[\n{"instruction": "A",}\n]', 'alpaca.json'),
      /^alpaca\.json( line 2)?: invalid JSON \(/,
      {
        file: 'alpaca.json',
      },
    );
  });
});

describe('reading a benchmark', () => {
  it('Vicuna: text + question_id', async () => {
    const text = jsonl({ question_id: 1, text: 'How can I improve my time management skills?', category: 'generic' });
    assert.deepEqual(await readBenchmark(text, 'vicuna_test_set.jsonl', 'vicuna'), [
      { id: '1', instruction: 'How can I improve my time management skills?', input: '' },
    ]);
  });

  it('Koala: prompt + id', async () => {
    const text = jsonl({ id: 'koala_1', prompt: 'Write a haiku.' });
    assert.deepEqual(await readBenchmark(text, 'koala_test_set.jsonl', 'koala'), [
      { id: 'koala_1', instruction: 'Write a haiku.', input: '' },
    ]);
  });

  it('Self-Instruct: instruction + instances[0].input, instances[0].output as the reference', async () => {
    const text = jsonl(
      {
        id: 'user_oriented_task_0',
        motivation_app: 'Grammarly',
        instruction: 'Fix the grammar.',
        instances: [{ input: 'me go', output: 'I go.' }],
      },
      { id: 'user_oriented_task_1', instruction: 'Tell a joke.', instances: [{ input: '', output: 'Knock knock.' }] },
    );
    assert.deepEqual(await readBenchmark(text, 'sinstruct_test_set.jsonl', 'sinstruct'), [
      { id: 'user_oriented_task_0', instruction: 'Fix the grammar.', input: 'me go', reference: 'I go.' },
      { id: 'user_oriented_task_1', instruction: 'Tell a joke.', input: '', reference: 'Knock knock.' },
    ]);
    await throwsInvalid(
      () =>
        readBenchmark(
          jsonl({ id: 'a', instruction: 'x', instances: [{ input: 'a' }, { input: 'b' }] }),
          's.jsonl',
          'sinstruct',
        ),
      /^s\.jsonl line 1: field "instances" must be an array holding exactly one object, found an array of 2 items$/,
      { line: 1, field: 'instances' },
    );
    await throwsInvalid(
      () => readBenchmark(jsonl({ id: 'a', instruction: 'x', instances: [{ input: 3 }] }), 's.jsonl', 'sinstruct'),
      /line 1: field "instances\[0\]\.input" must be a string/,
      { field: 'instances[0].input' },
    );
  });

  it('WizardLM: Instruction + idx', async () => {
    const text = jsonl({ idx: 1, Skill: 'Math', Difficulty: 1, Instruction: 'What is 2+2?' });
    assert.deepEqual(await readBenchmark(text, 'wizardlm_test_set.jsonl', 'wizardlm'), [
      { id: '1', instruction: 'What is 2+2?', input: '' },
    ]);
  });

  it('Anthropic HH and OASST: instruction + input + id', async () => {
    for (const name of ['anthropic', 'oasst']) {
      const text = jsonl(
        { id: 3, instruction: 'Summarise.', input: 'Long text.' },
        { id: 4, instruction: 'Hi?', input: '' },
      );
      assert.deepEqual(await readBenchmark(text, `${name}_test_set.jsonl`, name), [
        { id: '3', instruction: 'Summarise.', input: 'Long text.' },
        { id: '4', instruction: 'Hi?', input: '' },
      ]);
    }
  });

  it('a known format requires its own prompt field', async () => {
    await throwsInvalid(
      () => readBenchmark(jsonl({ question_id: 1, prompt: 'x' }), 'vicuna.jsonl', 'vicuna'),
      /^vicuna\.jsonl line 1: missing required field "text"$/,
      { line: 1, field: 'text' },
    );
  });

  it('matches known names as substrings, as the released scripts match file names', async () => {
    const text = jsonl({ question_id: 9, text: 'Q' });
    assert.deepEqual(await readBenchmark(text, 'v.jsonl', 'Vicuna-80'), [{ id: '9', instruction: 'Q', input: '' }]);
  });

  it('other names: first present prompt field, reference from output / reference / answer, ids or L<line>', async () => {
    const text = jsonl(
      { instruction: 'Reverse the word.', input: 'bread', output: 'daerb', id: 'heldout-001' },
      { prompt: 'P', reference: 'R' },
      { text: 'T', answer: 'A', idx: 5 },
      { Instruction: 'I', question_id: 'q' },
    );
    assert.deepEqual(await readBenchmark(text, 'heldout.jsonl', 'heldout'), [
      { id: 'heldout-001', instruction: 'Reverse the word.', input: 'bread', reference: 'daerb' },
      { id: 'L2', instruction: 'P', input: '', reference: 'R' },
      { id: '5', instruction: 'T', input: '', reference: 'A' },
      { id: 'q', instruction: 'I', input: '' },
    ]);
    await throwsInvalid(
      () => readBenchmark(jsonl({ question: 'x' }), 'mine.jsonl', 'mine'),
      /^mine\.jsonl line 1: missing a prompt field \(one of "instruction", "Instruction", "prompt", "text", or a "messages" or "conversations" list of turns\)$/,
      { line: 1 },
    );
    await throwsInvalid(
      () => readBenchmark(jsonl({ prompt: 'x', reference: 3 }), 'mine.jsonl', 'mine'),
      /line 1: field "reference" must be a string/,
      {
        field: 'reference',
      },
    );
  });

  it('reads a JSON array too, with I<index> ids', async () => {
    assert.deepEqual(await readBenchmark('[{"prompt": "a"}, {"prompt": "b"}]', 'k.json', 'custom'), [
      { id: 'I0', instruction: 'a', input: '' },
      { id: 'I1', instruction: 'b', input: '' },
    ]);
  });

  it('reads the demo held-out split with references', async () => {
    const prompts = await readBenchmark(
      readFileSync(join(__dirname, '..', 'data', 'demo', 'heldout.jsonl'), 'utf8'),
      'heldout.jsonl',
      'heldout',
    );
    assert.equal(prompts.length, 96);
    assert.ok(prompts.every((p) => p.reference !== undefined && p.id.startsWith('heldout-')));
  });

  it('same error style: invalid JSON, duplicate ids, empty', async () => {
    await throwsInvalid(
      () => readBenchmark(jsonl({ text: 'a', question_id: 1 }, 'oops'), 'vicuna.jsonl', 'vicuna'),
      /^vicuna\.jsonl line 2: invalid JSON/,
      {
        line: 2,
      },
    );
    await throwsInvalid(
      () =>
        readBenchmark(jsonl({ text: 'a', question_id: 1 }, { text: 'b', question_id: 1 }), 'vicuna.jsonl', 'vicuna'),
      /line 2: duplicate id in field "question_id" \(first used on line 1\)/,
      { line: 2, field: 'question_id' },
    );
    await throwsInvalid(() => readBenchmark('\n', 'koala.jsonl', 'koala'), /^koala\.jsonl: dataset is empty$/, {
      file: 'koala.jsonl',
    });
  });
});
