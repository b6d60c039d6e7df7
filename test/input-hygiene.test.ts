import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { readAlpaca, readBenchmark } from './helpers/read-text';
import { DatasetRows } from '../activities/datasets/read-dataset';
import { unpackedBytes, utf8Chunks } from '../activities/datasets/text-stream';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import { InvalidDataError, type Where } from '../common/failures';

const demoTrain = join(__dirname, '..', 'data', 'demo', 'train.jsonl');
const SECRET = 'hunter2-CANARY-5b1e';

/** Asserts `promise` or `fn` fails with an InvalidDataError whose message matches and whose `where` has these fields. */
function isInvalid(message: RegExp, where: Where) {
  return (err: unknown) => {
    assert.ok(err instanceof InvalidDataError, `not an InvalidDataError: ${String(err)}`);
    assert.match(err.message, message);
    for (const [key, value] of Object.entries(where)) assert.equal(err.where[key as keyof Where], value, key);
    return true;
  };
}

function tempRoot() {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'pift-hygiene-')));
  return { dir, deps: depsFromEnv({ PIFT_FILE_ROOTS: dir, PIFT_WORKDIR: join(dir, 'work') }) };
}

/** A user file's text as every reader decodes it: gzip unpacked, other compressions refused, UTF-8 checked. */
async function decodeUserFile(bytes: Buffer, source: string): Promise<string> {
  let text = '';
  for await (const chunk of utf8Chunks(unpackedBytes(Readable.from([bytes]), source), source)) text += chunk;
  return text;
}

describe('user file decoding', () => {
  it('invalid UTF-8 is an error naming the line, not a silent U+FFFD', async () => {
    const bytes = Buffer.concat([
      Buffer.from('{"instruction":"a","output":"b"}\n{"instruction":"c","output":"d"}\n{"instruction":"'),
      Buffer.from([0xc3, 0x28]), // a lead byte followed by a non-continuation byte
      Buffer.from(`${SECRET}","output":"e"}\n`),
    ]);
    await assert.rejects(
      decodeUserFile(bytes, 'train.jsonl'),
      isInvalid(/^train\.jsonl line 3: not valid UTF-8/, { file: 'train.jsonl', line: 3 }),
    );
    // A sequence cut short by the end of the file is invalid too.
    await assert.rejects(decodeUserFile(Buffer.from([0x7b, 0x0a, 0xe2, 0x82]), 't.jsonl'), isInvalid(/line 2/, {}));
    await assert.rejects(decodeUserFile(Buffer.from('\ufeff[]', 'utf16le'), 'u.json'), isInvalid(/UTF-16/, {}));
  });

  it('keeps a UTF-8 BOM, so the text (and its hash) is what a plain read gave', async () => {
    const bytes = Buffer.from('\ufeff{"instruction":"é","output":"ü"}\n', 'utf8');
    assert.equal(await decodeUserFile(bytes, 't.jsonl'), bytes.toString('utf8'));
  });

  it('a gzip JSONL dataset reads into the same rows as the plain file', async () => {
    const { dir, deps } = tempRoot();
    const plain = readFileSync(demoTrain);
    writeFileSync(join(dir, 'train.jsonl.gz'), gzipSync(plain));
    const rows = [];
    for await (const row of new DatasetRows(deps, join(dir, 'train.jsonl.gz'))) rows.push(row);
    assert.deepEqual(rows, await readAlpaca(plain.toString('utf8'), 'train.jsonl'));
    const gz = gzipSync(plain);
    assert.equal(await decodeUserFile(gz, 'train.jsonl.gz'), plain.toString('utf8'));
    // Concatenated members (as `cat a.gz b.gz` makes) are one stream.
    const halves = [plain.subarray(0, 1000), plain.subarray(1000)].map((part) => gzipSync(part));
    assert.equal(await decodeUserFile(Buffer.concat(halves), 't.jsonl.gz'), plain.toString('utf8'));
  });

  it('damaged gzip is named as such', async () => {
    const gz = gzipSync(readFileSync(demoTrain));
    await assert.rejects(
      decodeUserFile(gz.subarray(0, gz.length / 2), 'train.jsonl.gz'),
      isInvalid(/^train\.jsonl\.gz: gzip data is damaged/, { file: 'train.jsonl.gz' }),
    );
  });

  it('zstd, xz, bzip2 and zip are named as unsupported, not as invalid JSON', async () => {
    const { dir, deps } = tempRoot();
    for (const [format, magic] of [
      ['zstd', [0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x10]],
      ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00]],
      ['bzip2', [0x42, 0x5a, 0x68, 0x39, 0x31]],
      ['zip', [0x50, 0x4b, 0x03, 0x04, 0x14]],
    ] as const) {
      const file = join(dir, `train.jsonl.${format}`);
      writeFileSync(file, Buffer.concat([Buffer.from(magic), Buffer.from(SECRET)]));
      await assert.rejects(
        (async () => {
          for await (const row of new DatasetRows(deps, file)) void row;
        })(),
        isInvalid(new RegExp(`^train\\.jsonl\\.${format}: the file is ${format}-compressed, which is not supported`), {
          file: `train.jsonl.${format}`,
        }),
      );
    }
  });
});

describe('maxRowBytes', () => {
  const row = (output: string) => JSON.stringify({ instruction: 'Copy.', output });

  it('a JSONL line over the limit names the line and the setting', async () => {
    const text = [row('a'), row('x'.repeat(2000)), row('b')].join('\n');
    await assert.rejects(
      () => readAlpaca(text, 'train.jsonl', { maxRowBytes: 1000 }),
      isInvalid(
        /^train\.jsonl line 2: the row is 2\d{3} bytes, over the limit of 1000 \(input setting maxRowBytes\)$/,
        {
          file: 'train.jsonl',
          line: 2,
          field: 'maxRowBytes',
        },
      ),
    );
    assert.equal((await readAlpaca(text, 'train.jsonl', { maxRowBytes: 3000 })).length, 3);
  });

  it('counts UTF-8 bytes, not characters', async () => {
    // 600 characters, 1200 bytes; a whole line (a last line still arriving is only known to be over the limit).
    const text = row('é'.repeat(600)) + '\n';
    await assert.rejects(
      () => readAlpaca(text, 't.jsonl', { maxRowBytes: 1000 }),
      isInvalid(/line 1: the row is 12\d\d bytes/, {}),
    );
  });

  it('a JSON array element over the limit names its line', async () => {
    const text = `[\n${row('a')},\n${row('b')},\n  ${row('x'.repeat(500))}\n]`;
    await assert.rejects(
      () => readBenchmark(text, 'bench.json', 'custom', { maxRowBytes: 400 }),
      isInvalid(/^bench\.json line 4: the row is 5\d\d bytes, over the limit of 400/, {
        line: 4,
        field: 'maxRowBytes',
      }),
    );
  });

  it('defaults to 1 MiB, from the input schema', async () => {
    const big = row('x'.repeat(1024 * 1024));
    await assert.rejects(
      () => readAlpaca(big, 'train.jsonl'),
      isInvalid(/limit of 1048576 \(input setting maxRowBytes\)/, {}),
    );
    assert.equal((await readAlpaca(row('x'.repeat(1024 * 1024 - 100)), 'train.jsonl')).length, 1);
    assert.equal(resolvePipelineInput({ dataset: 's3://b/t.jsonl' }, 'r', {}).maxRowBytes, 1048576);
    assert.equal(resolvePipelineInput({ dataset: 's3://b/t.jsonl', maxRowBytes: 4096 }, 'r', {}).maxRowBytes, 4096);
    assert.throws(() => resolvePipelineInput({ dataset: 's3://b/t.jsonl', maxRowBytes: 0 }, 'r', {}), /maxRowBytes/);
  });
});

describe('parse errors never quote the file', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['a bare word in JSONL', `{"instruction":"a","output":"b"}\n{"instruction": ${SECRET}}\n`, /line 2: invalid JSON/],
    ['a line that is not JSON at all', `PATH=/usr/bin\0${SECRET}=1\0HOME=/root\0`, /line 1: invalid JSON/],
    [
      'a string where an object belongs',
      `"${SECRET}"\n`,
      /line 1: expected a JSON object, found a string of \d+ characters/,
    ],
    [
      'a bad token in a JSON array',
      `[\n{"instruction":"a","output":"b"},\n{"instruction": ${SECRET}}\n]`,
      /line 3: invalid JSON/,
    ],
    [
      'a missing comma in a JSON array',
      `[\n{"instruction":"a","output":"b"}\n"${SECRET}"]`,
      /line 3: invalid JSON \(Expected ',' or '\]' after array element\)$/,
    ],
    [
      'a wrong type',
      `{"instruction":"a","output":{"${SECRET}":1}}\n`,
      /field "output" must be a string, found an object/,
    ],
    [
      'a duplicate id',
      `{"id":"${SECRET}","instruction":"a","output":"b"}\n{"id":"${SECRET}","instruction":"a","output":"b"}\n`,
      /line 2: duplicate id in field "id" \(first used on line 1\)/,
    ],
  ];
  for (const [what, text, message] of cases) {
    it(what, async () => {
      await assert.rejects(
        () => readAlpaca(text, 'train.jsonl'),
        (err: unknown) => {
          isInvalid(message, { file: 'train.jsonl' })(err);
          const text = (err as Error).message;
          assert.ok(!text.includes('hunter2') && !text.includes('CANARY') && !text.includes('PATH'), text);
          return true;
        },
      );
    });
  }
});
