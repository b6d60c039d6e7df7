import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { sha256 } from '../activities/artifacts/hashing';
import { linesOf, withLongerLines, withRows } from '../activities/rows/engine';
import { ROW_ALLOCATOR_DEFAULT } from '../activities/rows/allocator';
import { seededOrder } from './helpers/seeded-order';
import { segmentRandomControl } from '../activities/segment/control-orderings';

describe('the row engine', () => {
  it('takes its memory limit from PIFT_ROW_MEMORY and spills under the work folder, removed afterwards', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pift-rows-'));
    try {
      const deps = { env: { PIFT_ROW_MEMORY: '64MB' }, workDir: dir };
      const setting = await withRows(deps, async (rows) => {
        const found = await rows.runAndReadAll(
          "SELECT current_setting('memory_limit'), current_setting('temp_directory')",
        );
        return found.getRows()[0] as string[];
      });
      assert.match(setting[0], /^6[01]\.\d MiB$/);
      assert.ok(setting[1].startsWith(join(dir, 'rows-')), setting[1]);
      assert.deepEqual(readdirSync(dir), []);
      const fallback = await withRows(
        { env: {}, workDir: dir },
        async (rows) => (await rows.runAndReadAll("SELECT current_setting('memory_limit')")).getRows()[0][0],
      );
      assert.match(String(fallback), /^95\.\d MiB$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("sets DuckDB's allocator before its library loads, keeping a value already given", () => {
    // What the environment holds when the engine first loads `@duckdb/node-api` (jemalloc reads it then, once).
    const atLoad = (given?: string) => {
      const script = `const Module = require('node:module');
        const load = Module._load;
        Module._load = function (request, ...rest) {
          if (request === '@duckdb/node-api') console.log(process.env.DUCKDB_JE_MALLOC_CONF);
          return load.call(this, request, ...rest);
        };
        require('./activities/rows/engine');`;
      const env = { ...process.env, DUCKDB_JE_MALLOC_CONF: given };
      if (given === undefined) delete env.DUCKDB_JE_MALLOC_CONF;
      return execFileSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
        cwd: join(__dirname, '..'),
        env,
        encoding: 'utf8',
      }).trim();
    };
    assert.equal(atLoad(), ROW_ALLOCATOR_DEFAULT);
    assert.equal(atLoad('dirty_decay_ms:1000'), 'dirty_decay_ms:1000');
  });

  it('reads lines in file order, blank lines skipped, a line longer than the first limit included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pift-rows-'));
    try {
      const long = JSON.stringify({ id: 'long', text: 'x'.repeat(5 << 20) });
      writeFileSync(join(dir, 'a.jsonl'), `{"id":"a"}\n\n  \n${long}\n{"id":"b, \\"c\\""}\n`);
      const found = await withRows({ env: {}, workDir: dir }, (rows) =>
        withLongerLines(async (maxLine) =>
          (
            await rows.runAndReadAll(
              `SELECT pos, length(line) FROM ${await linesOf(rows, join(dir, 'a.jsonl'), maxLine)}`,
            )
          )
            .getRows()
            .map(([pos, length]) => [Number(pos), Number(length)]),
        ),
      );
      assert.deepEqual(found, [
        [1, 10],
        [2, long.length],
        [3, 17],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the random control', () => {
  it('cuts the pool in seededOrder into stages of the given sizes, each line as the pool holds it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pift-control-'));
    try {
      const pool = Array.from({ length: 500 }, (_, i) => ({ id: i % 5 ? `b${i}` : `é"${i}`, instruction: `t${i}` }));
      const text = pool.map((r) => JSON.stringify(r) + '\n').join('');
      writeFileSync(join(dir, 'pool.jsonl'), text);
      const stages = await segmentRandomControl(
        { ...depsFromEnv({ PIFT_FILE_ROOTS: dir }), workDir: join(dir, 'work') },
        {
          runId: 'r',
          store: `file://${dir}`,
          stages: [
            { stage: 1, rows: 200 },
            { stage: 2, rows: 0 },
            { stage: 3, rows: 290 },
          ],
          pool: { uri: `file://${join(dir, 'pool.jsonl')}`, sha256: sha256(text) },
          seed: 3,
        },
      );
      const shuffled = seededOrder(pool, '3:control-random').map((r) => JSON.stringify(r) + '\n');
      const expected = [shuffled.slice(0, 200), [], shuffled.slice(200, 490)].map((lines) => lines.join(''));
      assert.deepEqual(
        stages.map((s) => readFileSync(new URL(s.uri), 'utf8')),
        expected,
      );
      assert.deepEqual(
        stages.map((s) => [s.rows, s.sha256]),
        expected.map((e, i) => [[200, 0, 290][i], sha256(e)]),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
