import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { IdTable } from '../activities/datasets/id-table';

describe('IdTable (ids and their first lines, compared byte for byte)', () => {
  it('answers as a Map of id to first line would, through many rehashes and multi-byte ids', () => {
    const table = new IdTable();
    const map = new Map<string, number>();
    for (let i = 0; i < 200_000; i++) {
      const id = i % 7 === 0 ? `é${i % 30_000}✓` : i % 3 ? `b${i % 90_000}` : String((i * 31) % 150_000);
      const expected = map.get(id);
      if (expected === undefined) map.set(id, i + 1);
      assert.equal(table.firstLine(id, i + 1), expected, `id ${id} at line ${i + 1}`);
    }
    assert.equal(table.size, map.size);
  });

  it('tells apart ids whose hashes collide', () => {
    // The table's hash (FNV-1a, 32 bits) over ASCII ids; among 200,000 ids some pairs share a hash (birthday bound).
    const fnv = (id: string) => {
      let h = 0x811c9dc5;
      for (let k = 0; k < id.length; k++) h = Math.imul(h ^ id.charCodeAt(k), 0x01000193);
      return h >>> 0;
    };
    const byHash = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; !pair && i < 1_000_000; i++) {
      const id = `k${i}`;
      const other = byHash.get(fnv(id));
      if (other !== undefined) pair = [other, id];
      byHash.set(fnv(id), id);
    }
    assert.ok(pair, 'no colliding pair found');
    const table = new IdTable();
    assert.equal(table.firstLine(pair[0], 1), undefined);
    assert.equal(table.firstLine(pair[1], 2), undefined);
    assert.equal(table.firstLine(pair[1], 3), 2);
    assert.equal(table.firstLine(pair[0], 4), 1);
  });

  it('looks ids up without recording them', () => {
    const table = new IdTable();
    for (let i = 0; i < 5_000; i++) table.firstLine(`r${i}`, i + 1);
    for (let i = 0; i < 10_000; i++) assert.equal(table.lineOf(`r${i}`), i < 5_000 ? i + 1 : undefined, `r${i}`);
    assert.equal(table.size, 5_000);
    // A looked-up id left no trace: recording it now finds it new, and the one recorded before it keeps its bytes.
    assert.equal(table.firstLine('r5000', 9), undefined);
    assert.equal(table.lineOf('r4999'), 5_000);
    assert.equal(table.lineOf('r5000'), 9);
  });
});
