import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { durationMs, RateGate, retryAfterMs } from '../activities/llm/rate-gate';
import { inParts, runPool } from '../activities/llm/row-pool';

const headers = (h: Record<string, string>) => new Headers(h);

describe('rate gate', () => {
  it('reads OpenAI reset durations and Retry-After', () => {
    assert.equal(durationMs('1s'), 1000);
    assert.equal(durationMs('6m0s'), 360_000);
    assert.equal(durationMs('20ms'), 20);
    assert.equal(durationMs('1h2m3.5s'), 3_723_500);
    assert.equal(durationMs('0.5'), 500);
    assert.equal(durationMs('soon'), undefined);
    assert.equal(retryAfterMs(headers({ 'retry-after-ms': '250', 'retry-after': '3' })), 250);
    assert.equal(retryAfterMs(headers({ 'retry-after': '2' })), 2000);
    assert.equal(retryAfterMs(headers({})), undefined);
  });

  it('lets requests through at the budgeted rate, first come first served', async () => {
    const gate = new RateGate({ requestsPerMinute: 600 }); // 10 a second, one second's worth saved up
    const started = Date.now();
    const order: number[] = [];
    await Promise.all(Array.from({ length: 25 }, (_, i) => gate.acquire(1).then(() => order.push(i))));
    const seconds = (Date.now() - started) / 1000;
    assert.deepEqual(
      order,
      Array.from({ length: 25 }, (_, i) => i),
    );
    // 10 at once, then 15 at 10 a second.
    assert.ok(seconds >= 1.4 && seconds < 2.5, `${seconds} s`);
  });

  it('pauses everyone for a Retry-After and for an exhausted x-ratelimit window', async () => {
    const gate = new RateGate();
    gate.observe(429, headers({ 'retry-after-ms': '300' }));
    let t = Date.now();
    await gate.acquire(1);
    assert.ok(Date.now() - t >= 280);
    gate.observe(
      200,
      headers({
        'x-ratelimit-limit-requests': '60',
        'x-ratelimit-remaining-requests': '0',
        'x-ratelimit-reset-requests': '12s',
      }),
    );
    t = Date.now();
    await gate.acquire(1);
    // One request of 60 a minute comes back after a second (reset 12 s / limit 60 = 200 ms at the least).
    assert.ok(Date.now() - t >= 180, `${Date.now() - t} ms`);
  });

  it('budgets tokens per minute by the estimated cost', async () => {
    const gate = new RateGate({ tokensPerMinute: 60_000 }); // 1000 tokens a second
    const t = Date.now();
    for (let i = 0; i < 3; i++) await gate.acquire(1000);
    assert.ok(Date.now() - t >= 1800, `${Date.now() - t} ms`);
  });

  it('stops waiting when the request is aborted', async () => {
    const gate = new RateGate({ requestsPerMinute: 1 });
    await gate.acquire(1);
    const controller = new AbortController();
    const waiting = gate.acquire(1, controller.signal);
    controller.abort(new Error('cancelled'));
    await assert.rejects(waiting, /cancelled/);
  });
});

describe('row pool', () => {
  it('hands parts on in order though they finish out of order, within the concurrency', async () => {
    let running = 0;
    let most = 0;
    const emitted: number[][] = [];
    const saved: number[] = [];
    await runPool<number, number>({
      parts: inParts(
        Array.from({ length: 95 }, (_, i) => i),
        10,
      ),
      concurrency: 7,
      load: async ({ index }) => (index === 3 ? [-1] : undefined),
      work: async (i) => {
        running += 1;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, (i * 13) % 17));
        running -= 1;
        return i * 2;
      },
      save: async ({ index }) => void saved.push(index),
      emit: ({ index }, results) => void emitted.push([index, ...results]),
    });
    assert.equal(most, 7);
    assert.deepEqual(
      emitted.map((e) => e[0]),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    // A stored part is taken as it was (here shorter: the caller checks lengths), never worked again.
    assert.deepEqual(emitted[3], [3, -1]);
    assert.deepEqual(emitted[9], [9, 180, 182, 184, 186, 188]);
    assert.ok(!saved.includes(3));
  });

  it('fails with the first error and starts no queued item after it', async () => {
    const started: number[] = [];
    await assert.rejects(
      runPool<number, number>({
        parts: inParts(
          Array.from({ length: 50 }, (_, i) => i),
          10,
        ),
        concurrency: 2,
        load: async () => undefined,
        work: async (i) => {
          started.push(i);
          await new Promise((r) => setTimeout(r, 5));
          if (i === 3) throw new Error('row 3 failed');
          return i;
        },
        save: async () => {},
        emit: () => {},
      }),
      /row 3 failed/,
    );
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(Math.max(...started) <= 4, `started ${started.join(',')}`);
  });

  it('pulls an item from its part only when a slot is free, so a large part never holds its rows', async () => {
    let pulled = 0;
    let answered = 0;
    let most = 0;
    function* rows() {
      for (let i = 0; i < 3000; i++) {
        pulled += 1;
        // Rows read but not yet answered: what the pool keeps alive (the part boundary may read one ahead).
        most = Math.max(most, pulled - answered);
        yield i;
      }
    }
    const emitted: number[] = [];
    await runPool<number, number>({
      parts: inParts(rows(), 1000),
      concurrency: 4,
      load: async () => undefined,
      work: async (i) => {
        await new Promise((r) => setImmediate(r));
        answered += 1;
        return i;
      },
      save: async () => {},
      emit: (_, results) => void emitted.push(...results),
    });
    assert.ok(most <= 5, `${most} rows were read and not yet answered at once`);
    assert.deepEqual(
      emitted,
      Array.from({ length: 3000 }, (_, i) => i),
    );
  });

  it('cuts rows into parts as they are read, a part left half read or unread skipped to its end', async () => {
    const parts = inParts(
      Array.from({ length: 14 }, (_, i) => i),
      4,
      7,
    );
    const seen: Array<[number, number[]]> = [];
    for await (const { index, items } of parts) {
      const taken: number[] = [];
      if (index !== 8) {
        for await (const item of items) {
          taken.push(item);
          if (index === 7 && taken.length === 2) break;
        }
      }
      seen.push([index, taken]);
    }
    assert.deepEqual(seen, [
      [7, [0, 1]],
      [8, []],
      [9, [8, 9, 10, 11]],
      [10, [12, 13]],
    ]);
  });
});
