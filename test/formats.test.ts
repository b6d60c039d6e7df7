import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { hashInputs, sha256 } from '../activities/artifacts/hashing';
import { toJsonl } from '../activities/artifacts/jsonl';
import { OFFLINE_SCORER_LABEL } from '../activities/score/offline-heuristic-scorer';
import { DefaultLogger } from '@temporalio/worker';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createCpuActivities } from '../activities/cpu';
import { readBenchmark } from './helpers/read-text';
import {
  buildScoreMessages,
  SCORE_CONVERSATION_PROMPT_SHA256,
  SCORE_CONVERSATION_PROMPT_TEMPLATE,
  SCORE_PROMPT_SHA256,
  SCORE_PROMPT_TEMPLATE,
  scoreMessagesFor,
  scorePromptFor,
} from '../activities/score/score-prompt';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import type { ScoreResult } from '../activities/types';
import { DatasetRows, type ReadDatasetOptions } from '../activities/datasets/read-dataset';
import { storedRow, type DatasetRow } from '../activities/datasets/rows';
import { InvalidDataError, type Where } from '../common/failures';

const fixtures = realpathSync(join(__dirname, 'fixtures', 'formats'));
const demoDir = realpathSync(join(__dirname, '..', 'data', 'demo'));
const demoTrain = join(demoDir, 'train.jsonl');
/** The demo's training rows as the step reads them: ids and fields as written, other fields kept as `extra`. */
const demoTrainRows = () =>
  readFileSync(demoTrain, 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const { id, instruction, input, output, ...extra } = JSON.parse(line) as Record<string, string>;
      return { id, instruction, input: input ?? '', output, extra };
    });

function tempRoot() {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'pift-formats-')));
  return { dir, deps: depsFromEnv({ PIFT_FILE_ROOTS: [dir, fixtures, demoDir].join(':'), PIFT_WORKDIR: dir }) };
}
const { deps } = tempRoot();

async function readAll(uri: string, options: ReadDatasetOptions = {}, using = deps): Promise<DatasetRow[]> {
  const rows: DatasetRow[] = [];
  for await (const row of new DatasetRows(using, uri, options)) rows.push(row);
  return rows;
}

async function rejects(promise: Promise<unknown>, message: RegExp, where: Where = {}) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof InvalidDataError, `not an InvalidDataError: ${String(err)}`);
    assert.match(err.message, message);
    for (const [key, value] of Object.entries(where)) assert.equal(err.where[key as keyof Where], value, key);
    return true;
  });
}

const ALPACA = [
  { id: 'a1', instruction: 'Copy the word.', input: 'cat', output: 'cat' },
  { id: 'a2', instruction: 'Name a colour.', input: '', output: 'Blue, as in "sky".' },
  { id: 'a3', instruction: 'Write two lines.\nKeep them short.', input: '', output: 'One,\ntwo.' },
];

const CONVERSATIONS = [
  {
    id: 'c1',
    instruction: 'Copy the word: cat',
    input: '',
    output: 'cat',
    messages: [
      { role: 'user', content: 'Copy the word: cat' },
      { role: 'assistant', content: 'cat' },
    ],
  },
  {
    id: 'c2',
    instruction: 'Name a colour.',
    input: '',
    output: 'Blue.',
    messages: [
      { role: 'system', content: 'You answer briefly.' },
      { role: 'user', content: 'Name a colour.' },
      { role: 'assistant', content: 'Blue.' },
    ],
  },
  {
    id: 'c3',
    instruction: 'Now double it.',
    input: '',
    output: '8',
    messages: [
      { role: 'user', content: 'Add 2 and 2.' },
      { role: 'assistant', content: '4' },
      { role: 'user', content: 'Now double it.' },
      { role: 'assistant', content: '8' },
    ],
  },
];

describe('dataset formats: every file type and layout reads into the same rows', () => {
  for (const file of ['alpaca.jsonl', 'alpaca.json', 'alpaca.csv', 'alpaca.parquet']) {
    it(`Alpaca ${file}`, async () => {
      const rows = await readAll(join(fixtures, file));
      assert.deepEqual(rows.map(storedRow), ALPACA);
    });
  }

  it('closes the file when a reader stops early, plain or gzip', async () => {
    const openFiles = () => readdirSync('/proc/self/fd').length;
    const { dir, deps: local } = tempRoot();
    const plain = join(dir, 'plain.jsonl');
    writeFileSync(plain, toJsonl(ALPACA));
    const gz = join(dir, 'packed.jsonl.gz');
    writeFileSync(gz, gzipSync(toJsonl(ALPACA)));
    for (const uri of [plain, gz]) {
      const before = openFiles();
      for await (const row of new DatasetRows(local, uri)) {
        assert.equal(row.id, 'a1');
        break;
      }
      // The file is closed once the stream is destroyed, on the next turns of the event loop.
      for (let i = 0; i < 100 && openFiles() > before; i++) await new Promise((r) => setImmediate(r));
      assert.equal(openFiles(), before, uri);
    }
  });

  const renamed = { instruction: 'prompt', input: 'query', output: 'response', id: 'uid' };
  for (const file of ['alpaca-renamed.jsonl', 'alpaca-renamed.json', 'alpaca-renamed.csv']) {
    it(`Alpaca with other field names through datasetColumns: ${file}`, async () => {
      const rows = await readAll(join(fixtures, file), { columns: renamed });
      assert.deepEqual(rows, ALPACA);
    });
  }

  for (const file of [
    'messages.jsonl',
    'messages.json',
    'messages.csv',
    'messages.parquet',
    'sharegpt.jsonl',
    'sharegpt.json',
    'sharegpt.parquet',
    'sharegpt-system.jsonl',
    'sharegpt-system.json',
  ]) {
    it(`conversations ${file}`, async () => {
      assert.deepEqual((await readAll(join(fixtures, file))).map(storedRow), CONVERSATIONS);
    });
  }

  it('a list of turns under another name through datasetColumns.messages', async () => {
    for (const file of ['messages-renamed.jsonl', 'messages-renamed.json']) {
      assert.deepEqual(
        (await readAll(join(fixtures, file), { columns: { messages: 'dialog' } })).map(storedRow),
        CONVERSATIONS,
      );
    }
  });

  it('turns keyed role/content under "conversations" (axolotl) or from/value under "messages"; a system column by another name', async () => {
    const { dir, deps: local } = tempRoot();
    const chats = readFileSync(join(fixtures, 'messages.jsonl'), 'utf8').replace(/"messages":/g, '"conversations":');
    writeFileSync(join(dir, 'axolotl.jsonl'), chats);
    assert.deepEqual((await readAll(join(dir, 'axolotl.jsonl'), {}, local)).map(storedRow), CONVERSATIONS);
    const shared = readFileSync(join(fixtures, 'sharegpt-system.jsonl'), 'utf8')
      .replace(/"conversations":/g, '"messages":')
      .replace(/"system":/g, '"system_prompt":');
    writeFileSync(join(dir, 'lf.jsonl'), shared);
    const rows = await readAll(join(dir, 'lf.jsonl'), { columns: { system: 'system_prompt' } }, local);
    assert.deepEqual(rows.map(storedRow), CONVERSATIONS);
    assert.ok(rows.every((r) => r.extra === undefined));
  });

  it('an explicit datasetFormat reads the same rows', async () => {
    assert.deepEqual(
      (await readAll(join(fixtures, 'sharegpt.parquet'), { format: 'sharegpt-parquet' })).map(storedRow),
      CONVERSATIONS,
    );
    assert.deepEqual((await readAll(join(fixtures, 'alpaca.json'), { format: 'alpaca-json' })).map(storedRow), ALPACA);
    await rejects(
      readAll(join(fixtures, 'alpaca.jsonl'), { format: 'alpaca-json' }),
      /^alpaca\.jsonl: datasetFormat is "alpaca-json" but the file is not a JSON array$/,
    );
  });

  it('the Alpaca JSONL and JSON paths give exactly the rows, ids and hash of the file', async () => {
    const text = readFileSync(demoTrain, 'utf8');
    const reader = new DatasetRows(deps, demoTrain, {});
    const rows: DatasetRow[] = [];
    for await (const row of reader) rows.push(row);
    assert.deepEqual(rows, demoTrainRows());
    assert.equal(reader.sha256, sha256(text));
    assert.equal(reader.layout, 'alpaca');

    // A JSON array with a BOM and CRLF, gzipped.
    const { dir, deps: local } = tempRoot();
    const array = '\ufeff[\r\n' + text.trim().split('\n').join(',\r\n') + '\r\n]\r\n';
    writeFileSync(join(dir, 'train.json.gz'), gzipSync(array));
    const gz = new DatasetRows(local, join(dir, 'train.json.gz'));
    const fromGz: DatasetRow[] = [];
    for await (const row of gz) fromGz.push(row);
    assert.deepEqual(fromGz, rows);
    assert.equal(gz.sha256, sha256(array));
  });

  it('rows larger than a stream chunk keep their ids, lines and sizes', async () => {
    const { dir, deps: local } = tempRoot();
    const long = (i: number) => ({ instruction: `Row ${i}: ` + 'é'.repeat(50_000), output: 'x'.repeat(i) });
    const lines = Array.from({ length: 12 }, (_, i) => JSON.stringify(long(i))).join('\n') + '\n';
    writeFileSync(join(dir, 'long.jsonl'), lines);
    const expected = (id: (i: number) => string) =>
      Array.from({ length: 12 }, (_, i) => ({ id: id(i), ...long(i), input: '' }));
    assert.deepEqual(
      await readAll(join(dir, 'long.jsonl'), {}, local),
      expected((i) => `L${i + 1}`),
    );
    const array = `[\n${Array.from({ length: 12 }, (_, i) => JSON.stringify(long(i))).join(',\n')}\n]`;
    writeFileSync(join(dir, 'long.json'), array);
    assert.deepEqual(
      await readAll(join(dir, 'long.json'), {}, local),
      expected((i) => `I${i}`),
    );
    // Over the limit while still arriving: named at once, without reading the rest.
    await rejects(
      readAll(join(dir, 'long.jsonl'), { maxRowBytes: 20_000 }, local),
      /^long\.jsonl line 1: the row is (more than )?\d+ bytes, over the limit of 20000/,
      { line: 1, field: 'maxRowBytes' },
    );
  });

  it('invalid UTF-8 in a stream names its line', async () => {
    const { dir, deps: local } = tempRoot();
    // Enough good lines before the bad one that it arrives in a later chunk than the first.
    const head = Buffer.from('{"instruction":"a","output":"b"}\n'.repeat(3000));
    const ids = 3001;
    const bytes = Buffer.concat([
      head,
      Buffer.from('{"instruction":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('","output":"e"}\n'),
    ]);
    writeFileSync(join(dir, 'bad.jsonl'), bytes);
    await rejects(readAll(join(dir, 'bad.jsonl'), {}, local), new RegExp(`^bad\\.jsonl line ${ids}: not valid UTF-8`), {
      line: ids,
    });
    writeFileSync(join(dir, 'bad.jsonl.gz'), gzipSync(bytes));
    await rejects(readAll(join(dir, 'bad.jsonl.gz'), {}, local), new RegExp(`line ${ids}: not valid UTF-8`));
    const gz = gzipSync(bytes);
    writeFileSync(join(dir, 'cut.jsonl.gz'), gz.subarray(0, gz.length >> 1));
    await rejects(readAll(join(dir, 'cut.jsonl.gz'), {}, local), /^cut\.jsonl\.gz: gzip data is damaged/);
    writeFileSync(join(dir, 'z.jsonl'), Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x10]));
    await rejects(readAll(join(dir, 'z.jsonl'), {}, local), /z\.jsonl: the file is zstd-compressed/);
  });
});

describe('dataset formats: unknown layouts and bad conversations are clear errors', () => {
  const { dir, deps: local } = tempRoot();
  const put = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const line = (...rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

  it('an unknown layout names the file, line, the keys found and the supported formats', async () => {
    await rejects(
      readAll(put('q.jsonl', line({ question: 'q', answer: 'a' })), {}, local),
      /^q\.jsonl line 1: unknown row layout: found fields "question", "answer"; supported: Alpaca \("instruction", "output", optional "input"\), ShareGPT \("conversations": \[\{"from", "value"\}\]\) or OpenAI messages \("messages": \[\{"role", "content"\}\]\), in JSONL, JSON, Parquet or CSV; map other field names with the input setting datasetColumns$/,
      { file: 'q.jsonl', line: 1, field: 'datasetColumns' },
    );
    await rejects(
      readAll(put('q.json', `[\n\n${JSON.stringify({ prompt: 'q' })}]`), { columns: { output: 'answer' } }, local),
      /^q\.json line 3: unknown row layout with datasetColumns \{"output":"answer"\}: found fields "prompt"/,
    );
    await rejects(
      readAll(put('q.csv', 'question,answer\nq,a\n'), {}, local),
      /^q\.csv line 2: unknown row layout: found fields "question", "answer"/,
    );
    await rejects(readAll(join(fixtures, 'alpaca-renamed.csv')), /^alpaca-renamed\.csv line 2: unknown row layout/);
  });

  it('CSV errors name the line without quoting the file; a Parquet file under another name is named as Parquet', async () => {
    await rejects(
      readAll(put('bad.csv', 'instruction,output\nCopy.,a\n"hunter2-CANARY,b\n'), {}, local),
      /^bad\.csv line \d: invalid CSV \(CSV_QUOTE_NOT_CLOSED\)$/,
      { file: 'bad.csv' },
    );
    await rejects(readAll(put('empty.csv', 'instruction,output\n'), {}, local), /^empty\.csv: dataset is empty$/);
    writeFileSync(join(dir, 'data.bin'), readFileSync(join(fixtures, 'alpaca.parquet')));
    await rejects(readAll(join(dir, 'data.bin'), {}, local), /^data\.bin: the file is Parquet; name it \.parquet/);
    assert.deepEqual(
      (await readAll(join(dir, 'data.bin'), { format: 'alpaca-parquet' }, local)).map(storedRow),
      ALPACA,
    );
  });

  it('a Parquet file without the layout names the row', async () => {
    await rejects(
      readAll(join(fixtures, 'alpaca.parquet'), { columns: { instruction: 'prompt' } }),
      /^alpaca\.parquet row 1: unknown row layout with datasetColumns \{"instruction":"prompt"\}: found fields "id", "instruction", "input", "output"/,
      { line: 1 },
    );
    await rejects(
      readAll(join(fixtures, 'alpaca.parquet'), { format: 'messages-parquet' }),
      /^alpaca\.parquet row 1: missing required field "messages"$/,
    );
  });

  it('a row of another layout after the first names the missing field', async () => {
    await rejects(
      readAll(put('mixed.jsonl', line({ instruction: 'a', output: 'b' }, { messages: [] })), {}, local),
      /^mixed\.jsonl line 2: missing required field "instruction"$/,
      { line: 2, field: 'instruction' },
    );
  });

  it('bad turns name the turn and the roles that are supported', async () => {
    const turn = (role: string, content: unknown) => ({ role, content });
    const cases: Array<[unknown, RegExp]> = [
      [{ messages: 'hi' }, /field "messages" must be a non-empty list of turns, found a string of 2 characters$/],
      [{ messages: [] }, /field "messages" must be a non-empty list of turns, found an array of 0 items$/],
      [
        { messages: [turn('tool', 'x')] },
        /field "messages\[0\]\.role" must be one of "user", "assistant", "system", found "tool"$/,
      ],
      [
        { messages: [turn('user', 'q'), turn('user', 'q')] },
        /field "messages\[1\]\.role": expected a assistant turn after a user turn, found a user turn/,
      ],
      [
        { messages: [turn('assistant', 'a')] },
        /field "messages\[0\]\.role": expected a user turn first, found a assistant turn/,
      ],
      [{ messages: [turn('user', 'q')] }, /field "messages" must end with an assistant turn, found a user turn last$/],
      [
        { messages: [turn('user', [{ type: 'text', text: 'q' }]), turn('assistant', 'a')] },
        /field "messages\[0\]\.content" must be a string, found an array of 1 item$/,
      ],
      [
        { messages: [turn('user', ' '), turn('assistant', 'a')] },
        /field "messages\[0\]\.content" must not be empty, found only spaces$/,
      ],
      [
        {
          conversations: [
            { from: 'human', value: 'q' },
            { from: 'function_call', value: 'f' },
          ],
        },
        /field "conversations\[1\]\.from" must be one of "human", "gpt", "system", found "function_call"$/,
      ],
      [{ conversations: [{ from: 'human' }] }, /missing required field "conversations\[0\]\.value"$/],
    ];
    for (const [row, message] of cases) {
      await rejects(readAll(put('c.jsonl', line(row)), {}, local), new RegExp(`^c\\.jsonl line 1: ${message.source}`), {
        line: 1,
      });
    }
  });
});

describe('conversations through scoring, generation and judging', () => {
  it('Alpaca rows keep the paper-scale prompt byte for byte; conversations get their own wording', () => {
    const alpaca: DatasetRow = { id: 'a', instruction: 'Copy.', input: 'cat', output: 'cat' };
    assert.deepEqual(scoreMessagesFor(alpaca), buildScoreMessages('Copy.', 'cat'));
    assert.equal(scorePromptFor('alpaca').sha256, SCORE_PROMPT_SHA256);
    assert.equal(scorePromptFor('messages').sha256, scorePromptFor('sharegpt').sha256);
    assert.notEqual(scorePromptFor('messages').sha256, SCORE_PROMPT_SHA256);
    // The scale is the same text in both prompts.
    const scale = (t: string) => t.slice(t.indexOf('Use a scale'), t.indexOf('\n\n[', t.indexOf('Use a scale')));
    assert.equal(scale(scorePromptFor('messages').template), scale(SCORE_PROMPT_TEMPLATE));

    const [content] = scoreMessagesFor(CONVERSATIONS[2] as DatasetRow).map((m) => m.content);
    assert.ok(
      content.endsWith(
        '[Conversation]\nUser: Add 2 and 2.\n\nAssistant: 4\n\nUser: Now double it.\n[End of Conversation]',
      ),
      content,
    );
    const [withSystem] = scoreMessagesFor(CONVERSATIONS[1] as DatasetRow).map((m) => m.content);
    assert.ok(withSystem.includes('[Conversation]\nSystem: You answer briefly.\n\nUser: Name a colour.\n[End'));
  });

  it('the scoring step stores conversation rows with their turns and the conversation prompt', async () => {
    const { dir } = tempRoot();
    const env = { PIFT_FILE_ROOTS: [dir, fixtures].join(':'), PIFT_WORKDIR: dir };
    const activities = createCpuActivities({ ...depsFromEnv(env), env });
    const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const score = async (dataset: string) => {
      const cfg = resolvePipelineInput(
        { dataset, store: dir, runId: `r-${basename(dataset)}`, scorer: { kind: 'offline' } },
        'wf',
        env,
      );
      const result: ScoreResult = await mock.run(() =>
        activities.scoreDifficulty({
          runId: cfg.runId,
          store: cfg.store,
          dataset: cfg.dataset,
          datasetFormat: cfg.datasetFormat,
          scorer: cfg.scorer,
        }),
      );
      const store = join(dir, cfg.runId, 'score');
      return {
        result,
        dataset: readFileSync(join(store, 'dataset.jsonl'), 'utf8'),
        prompt: readFileSync(join(store, 'prompt.txt'), 'utf8'),
      };
    };
    const chat = await score(join(fixtures, 'sharegpt.parquet'));
    assert.equal(chat.result.promptSha256, SCORE_CONVERSATION_PROMPT_SHA256);
    assert.equal(chat.prompt, SCORE_CONVERSATION_PROMPT_TEMPLATE);
    assert.equal(chat.dataset, CONVERSATIONS.map((r) => JSON.stringify(r) + '\n').join(''));
    const alpaca = await score(join(fixtures, 'alpaca.csv'));
    assert.equal(alpaca.result.promptSha256, SCORE_PROMPT_SHA256);
    assert.equal(alpaca.dataset, ALPACA.map((r) => JSON.stringify(r) + '\n').join(''));

    // The Alpaca JSONL path keeps the step's identity: the hash of the whole text, as the whole-file read gave it.
    writeFileSync(join(dir, 'train.jsonl'), readFileSync(demoTrain));
    const demo = await score(join(dir, 'train.jsonl'));
    const manifest = JSON.parse(readFileSync(join(dir, 'r-train.jsonl', 'score', 'manifest.json'), 'utf8')) as {
      inputsHash: string;
    };
    const expected = hashInputs({
      dataset: sha256(readFileSync(demoTrain, 'utf8')),
      scorer: OFFLINE_SCORER_LABEL,
      prompt: SCORE_PROMPT_SHA256,
      parseRetries: 2,
    });
    assert.equal(manifest.inputsHash, expected);
    // And the stored rows are what the step always wrote.
    const old = demoTrainRows().map(({ id, instruction, input, output }) => ({
      id,
      instruction,
      input,
      output,
    }));
    assert.equal(demo.dataset, toJsonl(old));
  });

  it('a benchmark of conversations prompts with the last user turn, its answer as the reference', async () => {
    const text = [
      {
        id: 'p1',
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Say hi.' },
        ],
      },
      {
        id: 'p2',
        conversations: [
          { from: 'human', value: 'Add 2 and 2.' },
          { from: 'gpt', value: '4' },
          { from: 'human', value: 'Double it.' },
          { from: 'gpt', value: '8' },
        ],
      },
    ]
      .map((r) => JSON.stringify(r))
      .join('\n');
    assert.deepEqual(await readBenchmark(text, 'chat.jsonl', 'chat'), [
      { id: 'p1', instruction: 'Say hi.', input: '' },
      { id: 'p2', instruction: 'Double it.', input: '', reference: '8' },
    ]);
    await assert.rejects(
      () => readBenchmark(JSON.stringify({ messages: [{ role: 'assistant', content: 'x' }] }), 'chat.jsonl', 'chat'),
      /^InvalidDataError: chat\.jsonl line 1: field "messages" has no user turn to use as the prompt$/,
    );
  });
});
