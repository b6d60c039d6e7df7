import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { before, describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { scoreDifficulty } from '../activities/score/score-difficulty';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import type { ScoreResult, ScoreRow } from '../activities/types';
import { startFakeOpenAI, type ChatRequest, type FakeOpenAI } from './helpers/fake-openai';
import { cleanUpFakeEndpoint, fakeEndpointEnv } from './helpers/endpoint-env';

/** Rows whose instruction names them, so the fake server knows which row each request is for. */
const ROWS = 250;
const rowText = (i: number) => `Instruction number ${i} of the pool test.`;
const rowOf = (req: ChatRequest) => {
  const match = /Instruction number (\d+) of the pool test/.exec(String(req.messages[0].content));
  return match ? Number(match[1]) : -1;
};
/** A fixed answer per row, on the 1-5 scale. */
const answerOf = (i: number) => String(1 + ((i * 7) % 41) / 10);
const mkdirp = (path: string) => (mkdirSync(path, { recursive: true }), path);

describe('scoring in one continuous pool', function () {
  this.timeout(60_000);
  let llm: FakeOpenAI;
  let dir: string;
  let dataset: string;
  let env: NodeJS.ProcessEnv;
  let run = 0;

  before(async () => {
    llm = await startFakeOpenAI({ apiKey: 'sk-pool' });
    dir = mkdtempSync(join(tmpdir(), 'score-pool-'));
    dataset = join(dir, 'rows.jsonl');
    const lines = Array.from({ length: ROWS }, (_, i) =>
      JSON.stringify({ id: `r${i}`, instruction: rowText(i), input: '', output: 'x' }),
    );
    writeFileSync(dataset, `${lines.join('\n')}\n`);
    env = fakeEndpointEnv(llm, 'sk-pool', dir);
  });
  cleanUpFakeEndpoint(() => ({ llm, dir }));

  /** Runs the activity once, as a worker would; `runId` names the store prefix (a retry reuses it). */
  const score = (runId: string, scorer: Record<string, unknown> = {}) => {
    // Each test asks its own questions: the cache shared across runs is tested on its own.
    const cfg = resolvePipelineInput(
      { dataset, store: join(dir, 'store'), runId, scorer: { cache: false, ...scorer } },
      'wf',
      env,
    );
    const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const deps = { ...depsFromEnv(env), env };
    return mock.run(() =>
      scoreDifficulty(deps, {
        runId: cfg.runId,
        store: cfg.store,
        dataset: cfg.dataset,
        datasetFormat: cfg.datasetFormat,
        scorer: cfg.scorer,
      }),
    ) as Promise<ScoreResult>;
  };
  const scoresOf = (runId: string) => readFileSync(join(dir, 'store', runId, 'score', 'scores.jsonl'), 'utf8');
  const fresh = () => `pool-${++run}`;

  it('stores the same bytes whatever the concurrency and the order answers arrive in', async () => {
    // Answers come back out of order: later rows are often faster than earlier ones.
    llm.handle((req) => ({ delayMs: (rowOf(req) * 37) % 23, then: { content: answerOf(rowOf(req)) } }));
    const one = fresh();
    await score(one, { concurrency: 3, parseRetries: 0 });
    const many = fresh();
    const result = await score(many, { concurrency: 128, parseRetries: 0 });
    assert.equal(scoresOf(one), scoresOf(many));
    assert.equal(result.scored, ROWS);
    const rows = scoresOf(many)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as ScoreRow);
    assert.deepEqual(
      rows.map((r) => r.id),
      Array.from({ length: ROWS }, (_, i) => `r${i}`),
    );
    // Who scored and with which prompt are said once, in the step's result (see storedScoreRow in score-answers.ts).
    assert.deepEqual(Object.keys(rows[0]), ['id', 'score']);
    assert.equal(rows[3].score, Number(answerOf(3)));
  });

  it('keeps up to `concurrency` requests in flight across parts, beyond 100', async () => {
    let inFlight = 0;
    let most = 0;
    llm.handle(async () => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 400));
      inFlight -= 1;
      return { content: '3' };
    });
    await score(fresh(), { concurrency: 150 });
    assert.equal(most, 150);
  });

  it('finishes under 60% 429s with every row scored, no row asked again after its answer', async () => {
    const answered = new Map<number, number>();
    let seed = 17;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    llm.handle((req) => {
      if (random() < 0.6) return { status: 429, retryAfterMs: 20, retryAfterSeconds: 1 };
      const row = rowOf(req);
      answered.set(row, (answered.get(row) ?? 0) + 1);
      return { content: answerOf(row) };
    });
    // Few client retries: most rows see a 429 outlast them and wait for the step's own turn.
    const result = await score(fresh(), { concurrency: 32, requestRetries: 1 });
    assert.equal(result.scored, ROWS);
    assert.equal(result.failed, 0);
    assert.equal(answered.size, ROWS);
    for (const [row, n] of answered) assert.equal(n, 1, `row ${row} was answered ${n} times`);
  });

  it('a retried attempt asks only the rows of parts that were not stored', async () => {
    const runId = fresh();
    const firstAsked = new Set<number>();
    // The first attempt dies when row 230 is asked: a refused key fails the step at once.
    llm.handle((req) => {
      const row = rowOf(req);
      firstAsked.add(row);
      if (row === 230) return { delayMs: 200, then: { status: 401 } };
      return { content: answerOf(row) };
    });
    await assert.rejects(score(runId, { concurrency: 16 }), /API key/);
    const stored = readdirSync(join(dir, 'store', runId, 'score', 'parts')).map((f) =>
      Number(/-(\d+)\.jsonl$/.exec(f)![1]),
    );
    assert.ok(stored.includes(0) && stored.includes(1), `parts stored: ${stored.join(', ')}`);
    assert.ok(!stored.includes(2), 'the part of the failed row was stored');

    const secondAsked: number[] = [];
    llm.handle((req) => {
      secondAsked.push(rowOf(req));
      return { content: answerOf(rowOf(req)) };
    });
    const result: ScoreResult = await score(runId, { concurrency: 16 });
    assert.equal(result.scored, ROWS);
    for (const row of secondAsked) assert.ok(!stored.includes(Math.floor(row / 100)), `row ${row} asked again`);
    assert.equal(secondAsked.length, ROWS - 100 * stored.length);
    // The same bytes as a run that never failed.
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    const clean = fresh();
    await score(clean, { concurrency: 16 });
    assert.equal(scoresOf(runId), scoresOf(clean));
  });

  it('asks `samples` times and stores the mean with each raw answer', async () => {
    const asks = new Map<number, number>();
    llm.handle((req) => {
      const row = rowOf(req);
      const n = (asks.get(row) ?? 0) + 1;
      asks.set(row, n);
      // Answers 3, 4, 4 (and an unparseable first answer for row 5, re-asked).
      if (row === 5 && n === 1) return { content: 'hard' };
      return { content: n === 1 || (row === 5 && n === 2) ? '3' : '4' };
    });
    const runId = fresh();
    const result = await score(runId, { samples: 3, concurrency: 32 });
    assert.equal(result.scored, ROWS);
    const rows = scoresOf(runId)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as ScoreRow);
    assert.deepEqual(Object.keys(rows[0]), ['id', 'score', 'samples', 'answers']);
    assert.equal(rows[0].score, 11 / 3);
    // Samples run side by side: which one got which answer depends on arrival, each keeps its own.
    assert.deepEqual([...rows[0].samples!].sort(), [3, 4, 4]);
    assert.deepEqual(rows[0].answers, rows[0].samples!.map(String));
    assert.equal(rows[5].score, 11 / 3);
    assert.equal(asks.get(5), 4);
  });

  it('re-asks an unparseable answer with a corrective turn, not the identical request', async () => {
    const asked: ChatRequest[] = [];
    llm.handle((req) => {
      if (rowOf(req) !== 7) return { content: answerOf(rowOf(req)) };
      asked.push(req);
      // A model that writes a word before its number, until told to give the number alone.
      return { content: req.messages.length === 1 ? 'Difficulty:' : '4' };
    });
    const runId = fresh();
    const result = await score(runId, { parseRetries: 2 });
    assert.equal(result.scored, ROWS);
    assert.equal(asked.length, 2);
    const [first, second] = asked;
    assert.deepEqual(second.messages.slice(0, 1), first.messages);
    assert.deepEqual(second.messages[1], { role: 'assistant', content: 'Difficulty:' });
    assert.equal(second.messages[2].role, 'user');
    assert.match(String(second.messages[2].content), /one number from 1 to 5/);
    assert.equal(JSON.parse(scoresOf(runId).trim().split('\n')[7]).score, 4);
  });

  it('a new run over the same rows takes every score from the cache and asks nothing', async () => {
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    const first = fresh();
    await score(first, { cache: true, samples: 2 });
    assert.equal(llm.requests.length, ROWS * 2);
    llm.reset();
    llm.handle(() => ({ status: 401 }));
    const second = fresh();
    const result = await score(second, { cache: true, samples: 2 });
    assert.equal(llm.requests.length, 0);
    assert.equal(result.scored, ROWS);
    assert.equal(scoresOf(second), scoresOf(first));
    // Other decoding (one sample) is another question: asked, not taken from the cache.
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    await score(fresh(), { cache: true });
    assert.equal(llm.requests.length, ROWS);
  });

  /** The answer-cache logs of the score step, as paths. */
  const cacheLogs = () => {
    const folder = mkdirp(join(dir, 'store', '.pift-cache', 'score', 'log'));
    return new Set(readdirSync(folder).map((name) => join(folder, name)));
  };

  it('writes answers many to a log, and takes a log torn by a crash up to its last whole line', async () => {
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    const before = cacheLogs();
    const first = fresh();
    // Three samples: questions no other test asks, so every entry is this test's own.
    await score(first, { cache: true, samples: 3 });
    const written = [...cacheLogs()].filter((f) => !before.has(f));
    assert.equal(written.length, 1, 'one log for the step, not a file per answer');
    const lines = readFileSync(written[0], 'utf8').split('\n').filter(Boolean);
    assert.equal(lines.length, ROWS);
    // Logs are written without a flush to disk: a crash can cut one short, here in the middle of its 11th line.
    writeFileSync(written[0], `${lines.slice(0, 10).join('\n')}\n${lines[10].slice(0, 30)}`);
    llm.reset();
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    const second = fresh();
    await score(second, { cache: true, samples: 3 });
    assert.equal(llm.requests.length, (ROWS - 10) * 3);
    assert.equal(scoresOf(second), scoresOf(first));
    llm.reset();
    await score(fresh(), { cache: true, samples: 3 });
    assert.equal(llm.requests.length, 0);
  });

  it('finds the answers an earlier version cached one object each', async () => {
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    const before = cacheLogs();
    const first = fresh();
    await score(first, { cache: true, samples: 4 });
    // The same entries as the earlier layout kept them: .pift-cache/score/<sha256[0..2]>/<sha256>.json.
    for (const log of [...cacheLogs()].filter((f) => !before.has(f))) {
      for (const line of readFileSync(log, 'utf8').split('\n').filter(Boolean)) {
        const { k, v } = JSON.parse(line) as { k: string; v: unknown };
        writeFileSync(
          join(mkdirp(join(dir, 'store', '.pift-cache', 'score', k.slice(0, 2))), `${k}.json`),
          JSON.stringify(v),
        );
      }
      rmSync(log);
    }
    llm.reset();
    llm.handle(() => ({ status: 401 }));
    const second = fresh();
    await score(second, { cache: true, samples: 4 });
    assert.equal(llm.requests.length, 0);
    assert.equal(scoresOf(second), scoresOf(first));
  });

  it("runs at the endpoint's announced requests-per-minute limit, learnt from its x-ratelimit headers", async () => {
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    llm.behave({ rateLimit: { requestsPerMinute: 3000 } }); // 50 a second
    const started = Date.now();
    const result = await score(fresh(), { concurrency: 64 });
    const seconds = (Date.now() - started) / 1000;
    assert.equal(result.scored, ROWS);
    // Only the first burst, before the limit is known, can run into it.
    assert.ok(llm.rateLimited <= 64, `${llm.rateLimited} requests answered 429`);
    assert.ok(seconds >= (ROWS - 50) / 50 - 0.5, `${seconds} s: faster than the limit`);
  });
});
