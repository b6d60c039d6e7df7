import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { DatasetRows } from '../activities/datasets/read-dataset';
import { InvalidDataError } from '../common/failures';

// No reader can hang: damaged copies of every fixture (truncations, byte flips, gzip or not) are read to the end under
// a time limit, and each is either read or refused as bad input naming the file.

const fixtures = realpathSync(join(__dirname, 'fixtures', 'formats'));
const dir = realpathSync(mkdtempSync(join(tmpdir(), 'pift-fuzz-')));
const deps = depsFromEnv({ PIFT_FILE_ROOTS: dir, PIFT_WORKDIR: join(dir, 'work') });
const LIMIT_MS = 5_000;

/** Reads every row of `name` (written with `bytes`): undefined when read, else the InvalidDataError it failed with. */
async function outcome(name: string, bytes: Uint8Array): Promise<InvalidDataError | undefined> {
  writeFileSync(join(dir, name), bytes);
  const read = (async () => {
    for await (const row of new DatasetRows(deps, join(dir, name))) void row;
  })();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name}: still reading after ${LIMIT_MS} ms`)), LIMIT_MS);
  });
  try {
    await Promise.race([read, late]);
    return undefined;
  } catch (err) {
    if (err instanceof InvalidDataError) return err;
    throw new Error(`${name}: ${String(err)} is not bad input`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** A small deterministic generator (mulberry32), so a failing case can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function* damaged(bytes: Buffer, seed: number): Generator<[string, Buffer]> {
  const next = random(seed);
  for (let k = 1; k <= 12; k++) {
    const cut = Math.floor((bytes.length * k) / 13);
    yield [`cut${cut}`, bytes.subarray(0, cut)];
  }
  for (let k = 0; k < 12; k++) {
    const copy = Buffer.from(bytes);
    const flips = 1 + Math.floor(next() * 3);
    for (let f = 0; f < flips; f++) copy[Math.floor(next() * copy.length)] ^= 1 << Math.floor(next() * 8);
    yield [`flip${k}`, copy];
  }
}

/** `messages` rows as CSV, one cell of turns per row, with the cell of `badLine` not JSON. */
function messagesCsv(rows: number, badLine: number): string {
  const lines = ['id,messages'];
  for (let i = 0; i < rows; i++) {
    const turns = JSON.stringify([
      { role: 'user', content: `question ${i}` },
      { role: 'assistant', content: `answer ${i}` },
    ]);
    const cell = lines.length + 1 === badLine ? 'not json' : turns;
    lines.push(`r${i},"${cell.replace(/"/g, '""')}"`);
  }
  return lines.join('\n') + '\n';
}

describe('no reader can hang: damaged files fail fast as bad input', function () {
  this.timeout(120_000);

  const files = readdirSync(fixtures).filter((f) => /\.(jsonl|json|csv|parquet)$/.test(f));
  for (const file of files) {
    it(`truncations and byte flips of ${file}, plain and gzip`, async () => {
      const bytes = readFileSync(join(fixtures, file));
      const packed = file.endsWith('.parquet') ? [] : [{ name: `${file}.gz`, bytes: gzipSync(bytes) }];
      for (const { name, bytes: whole } of [{ name: file, bytes }, ...packed]) {
        for (const [what, copy] of damaged(whole, whole.length)) {
          const err = await outcome(`${what}-${name}`, copy);
          if (!err) continue;
          assert.equal(err.where.file, `${what}-${name}`, err.message);
          // Only a verdict on the whole file names no line: no rows at all, or a Parquet footer that cannot be read.
          if (!/: (dataset is empty|not a readable Parquet file)/.test(err.message)) {
            assert.ok(err.where.line !== undefined, `no line in: ${err.message}`);
          }
        }
      }
    });
  }

  it('a turn cell that is not JSON on line 8 of a large CSV names the line, plain and gzip', async () => {
    const text = messagesCsv(50_000, 8);
    for (const [name, bytes] of [
      ['turns.csv', Buffer.from(text)],
      ['turns.csv.gz', gzipSync(text)],
    ] as const) {
      const started = Date.now();
      const err = await outcome(name, bytes);
      assert.ok(err, `${name} was read`);
      assert.match(err.message, new RegExp(`^${name.replace(/\./g, '\\.')} line 8: `));
      assert.equal(err.where.line, 8);
      assert.ok(Date.now() - started < LIMIT_MS);
    }
  });

  it('an unclosed CSV quote, a JSON array cut in the middle and a truncated gzip stream name where they fail', async () => {
    const quote = await outcome('quote.csv', Buffer.from('instruction,output\nA,a\n"B,b\n' + 'C,c\n'.repeat(20_000)));
    assert.match(quote?.message ?? '', /^quote\.csv line \d+: invalid CSV \(CSV_QUOTE_NOT_CLOSED\)$/);
    const rows = Array.from({ length: 2_000 }, (_, i) => JSON.stringify({ instruction: `q${i}`, output: `a${i}` }));
    const array = `[\n${rows.join(',\n')}\n]\n`;
    const cut = await outcome('cut.json', Buffer.from(array.slice(0, array.length >> 1)));
    assert.match(cut?.message ?? '', /^cut\.json line \d+: invalid JSON \(Unexpected end of JSON input\)$/);
    const gz = gzipSync(rows.join('\n'));
    const short = await outcome('short.jsonl.gz', gz.subarray(0, gz.length >> 1));
    assert.match(short?.message ?? '', /^short\.jsonl\.gz: gzip data is damaged \(\w+\) at line \d+$/);
    const parquet = readFileSync(join(fixtures, 'alpaca.parquet'));
    const broken = await outcome('broken.parquet', parquet.subarray(0, parquet.length - 10));
    assert.match(broken?.message ?? '', /^broken\.parquet: /);
  });
});
