import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'mocha';
import { batchRoundKeys } from '../activities/artifacts/run-keys';
import type { BatchOutcome } from '../activities/llm/batch-api';
import { openPastOutcomes } from '../activities/llm/batch-rounds';
import { withRows, type Rows } from '../activities/rows/engine';
import { LocalStore } from '../store/local-store';

/** The scoring rounds' custom ids, `<row>.<sample>`, in the order the rounds walk them. */
const position = (id: string) => {
  const [row, sample] = id.split('.').map(Number);
  return row * 65_536 + sample;
};

describe('earlier batch rounds read alongside the walk (openPastOutcomes)', () => {
  let dir: string;
  let store: LocalStore;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pift-batch-rounds-'));
    store = new LocalStore(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const withEngine = (use: (engine: { rows: Rows; dir: string }) => Promise<void>) =>
    withRows({ env: {}, workDir: join(dir, 'work') }, (rows, scratch) => use({ rows, dir: scratch }));
  const put = (runId: string, round: number, outcomes: BatchOutcome[]) =>
    store.put(batchRoundKeys(runId, 'score', round).results, outcomes.map((o) => `${JSON.stringify(o)}\n`).join(''));

  it('gives each of 100,000 requests the outcomes of every round, as a Map of all of them would', async () => {
    const rows = 50_000;
    const ids = Array.from({ length: rows * 2 }, (_, i) => `${i >> 1}.${i & 1}`);
    // Round 0 asks everything, round 1 what round 0 left (every third), round 2 every ninth of those; some rows
    // got cached in between and are not walked again.
    const round0 = ids.map((customId, i): BatchOutcome =>
      i % 3 ? { customId, content: '4', usage: { prompt_tokens: 2, completion_tokens: 1 } } : { customId, retry: 'x' },
    );
    const round1 = ids
      .filter((_, i) => i % 3 === 0)
      .map((customId, k): BatchOutcome =>
        k % 3 ? { customId, content: 'no' } : { customId, rejected: 'HTTP 400: bad' },
      );
    const round2 = ids.filter((_, i) => i % 9 === 0).map((customId): BatchOutcome => ({ customId, content: '2' }));
    await put('big', 0, round0);
    await put('big', 1, round1);
    await put('big', 2, round2);
    const expected = new Map<string, BatchOutcome[]>();
    for (const o of [...round0, ...round1, ...round2])
      expected.set(o.customId, [...(expected.get(o.customId) ?? []), o]);

    let walked = 0;
    await withEngine(async (engine) => {
      const past = await openPastOutcomes({ store, runId: 'big', step: 'score' }, 3, position, engine);
      for (const [i, id] of ids.entries()) {
        if (i % 10 === 4) continue; // cached since: skipped by the walk
        assert.deepEqual(await past.get(id, position(id)), expected.get(id), id);
        walked += 1;
      }
      assert.deepEqual(past.spent, { prompt: 2 * (ids.length - round1.length), output: ids.length - round1.length });
    });
    assert.equal(walked, 90_000);
    // Only the rounds before the one asked about count.
    await withEngine(async (engine) => {
      const none = await openPastOutcomes({ store, runId: 'big', step: 'score' }, 0, position, engine);
      assert.deepEqual(none.spent, { prompt: 0, output: 0 });
    });
  });

  it('reads a results file that is not in walking order to the same outcomes', async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `${i}.0`);
    const shuffled = [...ids.slice(25), ...ids.slice(0, 25)].map((customId): BatchOutcome => ({
      customId,
      content: customId,
    }));
    await put('shuffled', 0, shuffled);
    await put(
      'shuffled',
      1,
      ids.slice(10, 20).map((customId): BatchOutcome => ({ customId, retry: 'later' })),
    );
    await withEngine(async (engine) => {
      const past = await openPastOutcomes({ store, runId: 'shuffled', step: 'score' }, 2, position, engine);
      for (const id of ids) {
        const expected: BatchOutcome[] = [{ customId: id, content: id }];
        const n = Number(id.split('.')[0]);
        if (n >= 10 && n < 20) expected.push({ customId: id, retry: 'later' });
        assert.deepEqual(await past.get(id, position(id)), expected, id);
      }
    });
  });
});
