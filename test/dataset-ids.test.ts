import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { DatasetRows, type ReadDatasetOptions } from '../activities/datasets/read-dataset';
import { InvalidDataError } from '../common/failures';

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'pift-ids-')));
const fixtures = realpathSync(join(__dirname, 'fixtures', 'formats'));
const deps = depsFromEnv({ PIFT_FILE_ROOTS: [dir, fixtures].join(':'), PIFT_WORKDIR: dir });

const row = (id: unknown) => ({ id, instruction: 'Sort the numbers.', input: '1 2 3', output: 'sorted' });
/** A JSONL file of `n` rows with ids b0, b1, ...; `ids` replaces the id of some lines (1-based). */
function jsonl(name: string, n: number, ids: Record<number, unknown> = {}): string {
  const lines: string[] = [];
  for (let line = 1; line <= n; line++) lines.push(JSON.stringify(row(line in ids ? ids[line] : `b${line - 1}`)));
  const path = join(dir, name);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** Reads every row; the count of rows handed on before the read ended or failed. */
async function readAll(uri: string, options: ReadDatasetOptions = {}) {
  const dataset = new DatasetRows(deps, uri, options);
  let handed = 0;
  try {
    for await (const _ of dataset) handed += 1;
    return { handed, dataset, error: undefined };
  } catch (error) {
    return { handed, dataset, error };
  }
}

async function failsWith(uri: string, message: string, line: number, field = 'id', options: ReadDatasetOptions = {}) {
  const { error, dataset } = await readAll(uri, options);
  assert.ok(error instanceof InvalidDataError, `not an InvalidDataError: ${String(error)}`);
  assert.equal(error.message, message);
  assert.deepEqual(
    { file: error.where.file, line: error.where.line, field: error.where.field },
    { file: dataset.source, line, field },
  );
  // A failed first read is not a complete one: reread() refuses it.
  assert.equal(dataset.sha256, undefined);
  assert.throws(() => dataset.reread(), /reread\(\) before a complete first read/);
}

describe('the duplicate-id check of a streamed dataset (hashes in sorted chunks)', function () {
  this.timeout(60_000);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('names both lines of ids repeated far apart (rows 3 and 150,000), after every row was handed on', async () => {
    const uri = jsonl('far.jsonl', 150_000, { 150_000: 'b2' });
    const { handed } = await readAll(uri);
    assert.equal(handed, 150_000);
    await failsWith(uri, 'far.jsonl line 150000: duplicate id in field "id" (first used on line 3)', 150_000);
  });

  it('finds ids repeated across a chunk boundary, and reports the repeat that comes first', async () => {
    // Lines 65,536 and 65,537 are the last hash of the first chunk and the first of the second.
    await failsWith(
      jsonl('boundary.jsonl', 70_000, { 65_537: 'b65535' }),
      'boundary.jsonl line 65537: duplicate id in field "id" (first used on line 65536)',
      65_537,
    );
    // `a` repeats first in the file (line 60), though `b` was used first (line 1).
    await failsWith(
      jsonl('order.jsonl', 100, { 1: 'b', 50: 'a', 60: 'a', 70: 'b', 80: 'a' }),
      'order.jsonl line 60: duplicate id in field "id" (first used on line 50)',
      60,
    );
  });

  it('a number id and its digits as a string are one id, and a given id may not take a generated one', async () => {
    await failsWith(
      jsonl('numbers.jsonl', 5, { 2: 1, 4: '1' }),
      'numbers.jsonl line 4: duplicate id in field "id" (first used on line 2)',
      4,
    );
    await failsWith(
      jsonl('generated.jsonl', 5, { 1: null, 3: 'L1' }),
      'generated.jsonl line 3: duplicate id in field "id" (first used on line 1)',
      3,
    );
  });

  it('CSV, JSON arrays, Parquet and renamed id fields give the same error', async () => {
    const csv = join(dir, 'train.csv');
    writeFileSync(csv, 'id,instruction,output\na,Say a.,a\nb,Say b.,b\na,Say c.,c\n');
    await failsWith(csv, 'train.csv line 4: duplicate id in field "id" (first used on line 2)', 4);
    const json = join(dir, 'train.json');
    writeFileSync(json, JSON.stringify([row('a'), row('b'), row('a')], null, 1));
    await failsWith(json, 'train.json line 14: duplicate id in field "id" (first used on line 2)', 14);
    await failsWith(
      join(fixtures, 'alpaca-repeated-id.parquet'),
      'alpaca-repeated-id.parquet row 4: duplicate id in field "id" (first used on row 2)',
      4,
    );
    const renamed = join(dir, 'renamed.jsonl');
    writeFileSync(renamed, ['x', 'y', 'x'].map((uid) => `{"uid":"${uid}","prompt":"p","response":"r"}\n`).join(''));
    await failsWith(renamed, 'renamed.jsonl line 3: duplicate id in field "uid" (first used on line 1)', 3, 'uid', {
      columns: { id: 'uid', instruction: 'prompt', output: 'response' },
    });
  });

  it('reread() checks nothing: a step compares sha256 after it instead', async () => {
    const uri = jsonl('reread.jsonl', 10);
    const { dataset, error } = await readAll(uri);
    assert.equal(error, undefined);
    const first = dataset.sha256;
    jsonl('reread.jsonl', 10, { 10: 'b0' });
    const ids: string[] = [];
    for await (const r of dataset.reread()) ids.push(r.id);
    assert.equal(ids.length, 10);
    assert.equal(ids[9], 'b0');
    assert.notEqual(dataset.sha256, first);
  });
});
