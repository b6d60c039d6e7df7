import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MockActivityEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import { before, describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { sha256 } from '../activities/artifacts/hashing';
import { batchRoundKeys } from '../activities/artifacts/run-keys';
import { cacheKey } from '../activities/llm/answer-cache';
import { waitForBatch, type BatchCollected } from '../activities/llm/batch-rounds';
import { collectScoreBatch, submitScoreBatch } from '../activities/score/batch-scoring';
import { scoreCacheMaterial } from '../activities/score/score-answers';
import { scoreDifficulty } from '../activities/score/score-difficulty';
import { scoreMessagesFor, SCORE_PROMPT_SHA256 } from '../activities/score/score-prompt';
import type { ScoreInput, ScoreResult } from '../activities/types';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import { createCpuWorker } from '../workers/create-workers';
import { openStore } from '../store';
import { startRun } from '../client';
import { startHarness } from './helpers/pipeline-harness';
import { startFakeOpenAI, type ChatRequest, type FakeOpenAI } from './helpers/fake-openai';
import { cleanUpFakeEndpoint, fakeEndpointEnv, untilFinished } from './helpers/endpoint-env';
import { sharedTemporal } from './helpers/temporal';

const ROWS = 40;
const rowText = (i: number) => `Batch instruction number ${i}.`;
const rowOf = (req: ChatRequest) =>
  Number(/Batch instruction number (\d+)\./.exec(String(req.messages[0].content))?.[1]);
/** A fixed answer per row, on the 1-5 scale. */
const answerOf = (i: number) => String(1 + ((i * 7) % 41) / 10);
const KEY = 'sk-batch-secret-key-0123456789';

describe('scoring through the OpenAI Batch API', function () {
  this.timeout(120_000);
  let llm: FakeOpenAI;
  let dir: string;
  let dataset: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    llm = await startFakeOpenAI({ apiKey: KEY });
    dir = mkdtempSync(join(tmpdir(), 'batch-scoring-'));
    dataset = join(dir, 'rows.jsonl');
    const lines = Array.from({ length: ROWS }, (_, i) =>
      JSON.stringify({ id: `r${i}`, instruction: rowText(i), input: '', output: 'x' }),
    );
    writeFileSync(dataset, `${lines.join('\n')}\n`);
    env = fakeEndpointEnv(llm, KEY, dir);
  });
  cleanUpFakeEndpoint(() => ({ llm, dir }));

  /** The activity's input as the pipeline builds it; every run gets a store of its own unless one is given. */
  const inputFor = (scorer: Record<string, unknown> = {}, store = join(dir, `store-${randomUUID()}`)): ScoreInput => {
    const cfg = resolvePipelineInput({ dataset, store, runId: 'run', scorer }, 'wf', env);
    return {
      runId: cfg.runId,
      store: cfg.store,
      dataset: cfg.dataset,
      datasetFormat: cfg.datasetFormat,
      scorer: cfg.scorer,
    };
  };
  const deps = () => ({ ...depsFromEnv(env), env });
  const activity = <T>(fn: () => Promise<T>) =>
    new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') }).run(fn) as Promise<T>;
  const score = (input: ScoreInput) => activity(() => scoreDifficulty(deps(), input)) as Promise<ScoreResult>;
  const storeDir = (input: ScoreInput) => (input.store.startsWith('file:') ? fileURLToPath(input.store) : input.store);
  const scoresOf = (input: ScoreInput) => readFileSync(join(storeDir(input), 'run', 'score', 'scores.jsonl'), 'utf8');
  const chatRequests = () => llm.requests.filter((r) => r.path.endsWith('/chat/completions')).length;

  /** The workflow's rounds, without its timers: submit, look until finished, collect, again while anything is left. */
  async function rounds(input: ScoreInput, resubmits = 3): Promise<BatchCollected[]> {
    const done: BatchCollected[] = [];
    for (let round = 0; round <= resubmits; round++) {
      const sent = await activity(() => submitScoreBatch(deps(), { ...input, round }));
      if (!sent.batchId) break;
      const ref = { batchId: sent.batchId, batchIds: sent.batchIds, setting: 'input.scorer.mode' };
      await untilFinished(() => activity(() => waitForBatch(env, ref)));
      const collected = await activity(() => collectScoreBatch(deps(), { ...input, round, batchId: sent.batchId! }));
      done.push(collected);
      if (!collected.pending) break;
    }
    return done;
  }

  it('keeps the answer cache keys of the online path', () => {
    const row = { id: 'r1', instruction: rowText(1), input: '', output: 'x' };
    // The material as the online path wrote it before it was shared: its bytes are every cached score's key.
    const before = {
      model: 'm',
      prompt: SCORE_PROMPT_SHA256,
      decoding: { temperature: 0, n: 1, max_tokens: 8 },
      samples: 1,
      text: sha256(JSON.stringify(scoreMessagesFor(row))),
    };
    assert.equal(cacheKey('score', scoreCacheMaterial('m', SCORE_PROMPT_SHA256, 1, row)), cacheKey('score', before));
  });

  for (const samples of [1, 3]) {
    it(`writes the same scores.jsonl as online scoring, asking nothing online (samples ${samples})`, async () => {
      llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
      const online = inputFor({ cache: false, samples });
      await score(online);
      assert.equal(chatRequests(), ROWS * samples);
      llm.reset();
      llm.handle((req) => ({ content: answerOf(rowOf(req)) }));

      const batch = inputFor({ mode: 'batch', samples });
      const done = await rounds(batch);
      assert.equal(done.length, 1);
      assert.deepEqual(
        { answered: done[0].answered, pending: done[0].pending, cached: done[0].cached },
        { answered: ROWS * samples, pending: 0, cached: ROWS },
      );
      assert.equal(llm.batch.batches.length, 1);
      const lines = llm.batch.files.get(llm.batch.batches[0].inputFileId)!.text.trim().split('\n');
      assert.equal(lines.length, ROWS * samples);
      const first = JSON.parse(lines[0]) as Record<string, unknown>;
      assert.deepEqual(
        { custom_id: first.custom_id, method: first.method, url: first.url },
        { custom_id: '0.0', method: 'POST', url: '/v1/chat/completions' },
      );
      await score(batch);
      assert.equal(chatRequests(), 0, 'the scoring step took every row from the cache');
      assert.equal(scoresOf(batch), scoresOf(online));
    });
  }

  it("cuts a round above the endpoint's cap on one batch into several, collected in request order", async () => {
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    const whole = inputFor({ mode: 'batch', samples: 3 });
    await rounds(whole);
    await score(whole);
    assert.equal(llm.batch.batches.length, 1);
    llm.reset();
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    // The endpoint refuses batches of more than 7 requests; the worker is told its cap.
    llm.batch.behave({ maxRequests: 7 });
    env.PIFT_BATCH_MAX_REQUESTS = '7';
    try {
      const cut = inputFor({ mode: 'batch', samples: 3 });
      const done = await rounds(cut);
      assert.equal(done.length, 1);
      assert.deepEqual(
        { answered: done[0].answered, pending: done[0].pending, cached: done[0].cached },
        { answered: ROWS * 3, pending: 0, cached: ROWS },
      );
      const sizes = llm.batch.batches.map((b) => b.counts.total);
      assert.equal(sizes.length, Math.ceil((ROWS * 3) / 7));
      assert.ok(sizes.every((n) => n <= 7));
      // The batches hold consecutive runs of the round's requests, which requests.jsonl keeps whole.
      const sent = llm.batch.batches.flatMap((b) =>
        llm.batch.files
          .get(b.inputFileId)!
          .text.trim()
          .split('\n')
          .map((l) => (JSON.parse(l) as { custom_id: string }).custom_id),
      );
      const round0 = (input: ScoreInput, file: string) =>
        readFileSync(join(storeDir(input), 'run', 'score', 'batch', 'round-00', file), 'utf8');
      assert.deepEqual(
        sent,
        round0(cut, 'requests.jsonl')
          .trim()
          .split('\n')
          .map((l) => (JSON.parse(l) as { custom_id: string }).custom_id),
      );
      assert.equal(round0(cut, 'requests.jsonl'), round0(whole, 'requests.jsonl'));
      assert.equal(round0(cut, 'results.jsonl'), round0(whole, 'results.jsonl'));
      // Sent once: the activity run again returns the round's batches without creating any.
      const again = await activity(() => submitScoreBatch(deps(), { ...cut, round: 0 }));
      assert.deepEqual(
        again.batchIds,
        llm.batch.batches.map((b) => b.id),
      );
      assert.equal(llm.batch.batches.length, sizes.length);
      await score(cut);
      assert.equal(chatRequests(), 0);
      assert.equal(scoresOf(cut), scoresOf(whole));
    } finally {
      delete env.PIFT_BATCH_MAX_REQUESTS;
      llm.batch.behave({});
    }
  });

  it('asks failed, expired and unparseable requests again in new batches, until every row is answered', async () => {
    const asks = new Map<number, number>();
    llm.handle((req) => {
      const i = rowOf(req);
      asks.set(i, (asks.get(i) ?? 0) + 1);
      // Every fourth row's first answer does not parse.
      if (i % 4 === 1 && asks.get(i) === 1) return { content: 'quite hard, I would say' };
      return { content: answerOf(i) };
    });
    // The first batch: rows 0, 5, …, 35 fail on the endpoint's side (8), rows 3, 17, 24, 31, 38 expire (row 10 fails).
    llm.batch.behave({
      fate: (customId, batch) => {
        const i = Number(customId.split('.')[0]);
        if (batch === 1 && i % 5 === 0) return 'fail';
        if (batch === 1 && i % 7 === 3) return 'expire';
        return 'answer';
      },
    });
    const batch = inputFor({ mode: 'batch' });
    const done = await rounds(batch);
    assert.deepEqual(
      done.map((d) => ({ retry: d.retry, unparseable: d.unparseable, pending: d.pending, cached: d.cached })),
      [
        // Rows 1, 9, 13, 21, 29, 33, 37 answered unparseably; 20 rows scored.
        { retry: 13, unparseable: 7, pending: 20, cached: 20 },
        // The 13 asked for the first time: rows 5, 25 and 17 answer unparseably.
        { retry: 0, unparseable: 3, pending: 3, cached: 17 },
        { retry: 0, unparseable: 0, pending: 0, cached: 3 },
      ],
    );
    // Each batch asked exactly what the one before left.
    assert.deepEqual(
      llm.batch.batches.map((b) => b.counts.total),
      [ROWS, 20, 3],
    );
    // An unparseable answer is asked again after the model's reply and a correction, as online (askAgain).
    type Line = { custom_id: string; body: { messages: ChatRequest['messages'] } };
    const second = llm.batch.files.get(llm.batch.batches[1].inputFileId)!.text.trim().split('\n');
    const reasked = second.map((l) => JSON.parse(l) as Line).filter((l) => l.body.messages.length === 3);
    assert.deepEqual(
      reasked.map((l) => Number(l.custom_id.split('.')[0])),
      [1, 9, 13, 21, 29, 33, 37],
    );
    for (const l of reasked) {
      assert.deepEqual(l.body.messages[1], { role: 'assistant', content: 'quite hard, I would say' });
      assert.match(String(l.body.messages[2].content), /one number from 1 to 5/);
    }
    assert.equal(
      done.reduce((n, d) => n + d.cached, 0),
      ROWS,
    );
    await score(batch);
    assert.equal(chatRequests(), 0);
    const scores = scoresOf(batch)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; score: number });
    assert.deepEqual(
      scores.map((s) => s.score),
      Array.from({ length: ROWS }, (_, i) => Number(answerOf(i))),
    );
  });

  it("takes a request's last line in its batch's files, passing over lines that do not parse or name no custom_id", async () => {
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    const failed = { custom_id: '1.0', response: { status_code: 500, body: { error: { message: 'later' } } } };
    llm.batch.behave({
      extraLines: (n) =>
        n === 1
          ? {
              // Row 4's last line is JSON to the row engine (a trailing comma) but not to JSON.parse.
              output: ['{"custom_id": "2.0", "resp', JSON.stringify({ custom_id: 3 }), '{"custom_id": "4.0",}'],
              errors: [JSON.stringify(failed)],
            }
          : {},
    });
    const done = await rounds(inputFor({ mode: 'batch' }));
    // Row 1's answer in the output file is overruled by its later line in the error file, row 4's by an unreadable
    // line: both are asked again in round 1.
    assert.deepEqual(
      done.map((d) => [d.answered, d.retry, d.pending, d.cached]),
      [
        [ROWS - 2, 2, 2, ROWS - 2],
        [2, 0, 0, 2],
      ],
    );
  });

  it('asks online whatever the batches left, and no more', async () => {
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    llm.batch.behave({ fate: (customId) => (Number(customId.split('.')[0]) < 3 ? 'expire' : 'answer') });
    const batch = inputFor({ mode: 'batch' });
    const done = await rounds(batch, 1);
    assert.equal(done.length, 2);
    assert.equal(done[1].pending, 3);
    await score(batch);
    assert.equal(chatRequests(), 3);
  });

  it('asks everything again when a whole batch fails', async () => {
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    llm.batch.behave({ failBatch: (n) => n === 1 });
    const batch = inputFor({ mode: 'batch' });
    const done = await rounds(batch);
    assert.deepEqual(
      done.map((d) => [d.retry, d.pending, d.cached]),
      [
        [ROWS, ROWS, 0],
        [0, 0, ROWS],
      ],
    );
  });

  it('fails as bad input naming the mode when the endpoint has no Batch API', async () => {
    const saved = env.PIFT_OPENAI_BASE_URL;
    // The fake answers 404 for files and batches under any other path.
    env.PIFT_OPENAI_BASE_URL = `${llm.baseURL}/no-batches`;
    try {
      await assert.rejects(
        activity(() => submitScoreBatch(deps(), { ...inputFor({ mode: 'batch' }), round: 0 })),
        (err: Error & { field?: string }) =>
          /input\.scorer\.mode is "batch" but the LLM endpoint .* answered HTTP 404 for POST .*\/files: it has no Batch API/.test(
            err.message,
          ),
      );
    } finally {
      env.PIFT_OPENAI_BASE_URL = saved;
    }
  });

  it('sends one batch per round, also when the activity runs again', async () => {
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    const batch = inputFor({ mode: 'batch' });
    const first = await activity(() => submitScoreBatch(deps(), { ...batch, round: 0 }));
    const again = await activity(() => submitScoreBatch(deps(), { ...batch, round: 0 }));
    assert.equal(again.batchId, first.batchId);
    assert.equal(llm.batch.batches.length, 1);
    // An attempt that died after creating the batch, before recording it: the batch is found by its metadata.
    rmSync(join(storeDir(batch), batchRoundKeys('run', 'score', 0).batch));
    const found = await activity(() => submitScoreBatch(deps(), { ...batch, round: 0 }));
    assert.equal(found.batchId, first.batchId);
    assert.equal(llm.batch.batches.length, 1);
    assert.equal(llm.batch.files.size, 1, 'the request file was not uploaded twice');
    // A collect that runs again reads its stored outcomes instead of downloading them again.
    const ref = { batchId: first.batchId!, setting: 'input.scorer.mode' };
    await untilFinished(() => activity(() => waitForBatch(env, ref)));
    await activity(() => collectScoreBatch(deps(), { ...batch, round: 0, batchId: first.batchId! }));
    const downloads = () => llm.requests.filter((r) => r.path.endsWith('/content')).length;
    const before = downloads();
    await activity(() => collectScoreBatch(deps(), { ...batch, round: 0, batchId: first.batchId! }));
    assert.equal(downloads(), before);
    // A run scored again under another run id finds everything in the cache: no batch at all.
    const next = await activity(() => submitScoreBatch(deps(), { ...batch, runId: 'run-2', round: 0 }));
    assert.equal(next.batchId, undefined);
    assert.equal(llm.batch.batches.length, 1);
  });

  it('refuses a batch whose estimate is above the step limit, before uploading anything', async () => {
    const batch = inputFor({ mode: 'batch', maxTokens: 50 });
    await assert.rejects(
      activity(() => submitScoreBatch(deps(), { ...batch, round: 0 })),
      /input\.scorer\.maxTokens: the scoring step would take ~\d+ tokens/,
    );
    assert.equal(llm.batch.files.size, 0);
    assert.equal(llm.batch.batches.length, 0);
  });

  /** Runs the test workflow batchScoring on a CPU worker of its own; resolves to its result and history. */
  async function scoreInWorkflow(batchPollInterval: string) {
    const temporal = await sharedTemporal();
    const taskQueue = `batch-${randomUUID()}`;
    const worker = await createCpuWorker({
      connection: temporal.nativeConnection,
      namespace: temporal.namespace ?? 'default',
      taskQueue,
      deps: deps(),
      workflowBundle: await bundleWorkflowCode({
        workflowsPath: require.resolve('./workflows/batch-scoring'),
        logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } as never,
      }),
    });
    const input = inputFor({ mode: 'batch' });
    const workflowId = `batch-scoring-${randomUUID()}`;
    const result = await worker.runUntil(
      temporal.client.workflow.execute('batchScoring', {
        taskQueue,
        workflowId,
        args: [input, { batchPollInterval, batchResubmits: 2 }],
      }) as Promise<{ rounds: BatchCollected[]; score: ScoreResult }>,
    );
    const history = await temporal.client.workflow.getHandle(workflowId).fetchHistory();
    return { input, result, history, events: history.events ?? [] };
  }

  it('runs in a workflow that waits for the batch in one activity, and keeps the key out of history and store', async () => {
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    llm.batch.behave({ retrievesBeforeDone: 3 });
    const { input, result, history, events } = await scoreInWorkflow('1 second');
    assert.equal(result.rounds.length, 1);
    assert.equal(result.score.scored, ROWS);
    assert.equal(chatRequests(), 0);
    // validating, in_progress ×3, completed: five looks, all attempts of one activity, and no timer.
    assert.equal(events.filter((e) => e.timerStartedEventAttributes).length, 0);
    const waits = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'waitForBatch');
    assert.equal(waits.length, 1);
    assert.equal(waitAttempts(events), 5);
    // Payloads are bytes, base64 in the history's JSON form: read them as text.
    const text = JSON.stringify(history, (k, v: unknown) =>
      v instanceof Uint8Array
        ? Buffer.from(v).toString('utf8')
        : k === 'data' && typeof v === 'string'
          ? Buffer.from(v, 'base64').toString('utf8')
          : v,
    );
    assert.ok(text.includes(llm.batch.batches[0].id), 'the history holds the batch id');
    assert.ok(!text.includes(KEY) && !text.includes(KEY.slice(-8)), 'the API key reached the history');
    for (const file of walk(storeDir(input))) {
      assert.ok(!readFileSync(file, 'utf8').includes(KEY.slice(-8)), `the API key reached ${file}`);
    }
  });

  it('a 24-hour batch looked at every hour (24 looks) writes as many history events as a batch of 3 looks', async () => {
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    // Fast looks stand in for the day: the history does not depend on the time between them. (The server retries no
    // faster than about once a second, so 288 looks, a day at the default 5 minutes, would take minutes here.)
    const eventsFor = async (looks: number) => {
      llm.batch.behave({ retrievesBeforeDone: looks - 2 });
      const { events } = await scoreInWorkflow('1 second');
      assert.equal(waitAttempts(events), looks);
      return events.length;
    };
    const short = await eventsFor(3);
    const day = await eventsFor(24);
    assert.equal(day, short);
    assert.ok(day < 40, `${day} events`);
  });
});

type Events = Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events'];

/** The attempt that finished the waitForBatch activity: its one ActivityTaskStarted event is written with the last. */
function waitAttempts(events: NonNullable<Events>): number | undefined {
  const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'waitForBatch');
  const started = events.find(
    (e) => String(e.activityTaskStartedEventAttributes?.scheduledEventId) === String(scheduled?.eventId),
  );
  return started?.activityTaskStartedEventAttributes?.attempt ?? undefined;
}

function walk(root: string): string[] {
  return readdirSync(root).flatMap((name) => {
    const path = join(root, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

describe('an export-only run with scorer.mode "batch" on Temporal and S3', function () {
  this.timeout(5 * 60_000);

  it('scores through batches, then segments with nothing asked online', async () => {
    const h = await startHarness();
    h.llm.handle((req) => {
      const text = String(req.messages[0].content);
      return { content: text.includes('Copy') ? '1' : text.includes('colour') ? '2.5' : '4' };
    });
    // The first batch loses one request: the run submits a second batch for it.
    h.llm.batch.behave({ fate: (customId, batch) => (batch === 1 && customId === '1.0' ? 'expire' : 'answer') });
    const rows = [
      { id: 'a', instruction: 'Copy the word "sun".', input: '', output: 'sun' },
      { id: 'b', instruction: 'Name a colour.', input: '', output: 'Blue.' },
      { id: 'c', instruction: 'Prove that there are infinitely many primes.', input: '', output: 'Suppose not ...' },
    ];
    const data = openStore(`s3://${h.s3.bucket}/datasets`, h.workerEnv);
    await data.put('batch/rows.jsonl', rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const runId = 'batch-export-run';
    const run = await startRun(
      h.temporal.client,
      {
        dataset: data.uriFor('batch/rows.jsonl'),
        runId,
        store: h.storeUri,
        gpuTaskQueue: h.gpuQueue,
        training: { mode: 'export-only' },
        scorer: { mode: 'batch', batchPollInterval: '1 second' },
      },
      { taskQueue: h.cpuQueue },
    );
    const result = await run.handle.result();
    assert.deepEqual(
      result.stages.map((s) => s.rows),
      [1, 1, 1],
    );
    assert.equal(h.llm.requests.filter((r) => r.path.endsWith('/chat/completions')).length, 0);
    assert.equal(h.llm.batch.batches.length, 2);
    assert.equal(h.llm.batch.batches[1].counts.total, 1);
    const history = await run.handle.fetchHistory();
    const activities = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter((name): name is string => name !== undefined);
    assert.deepEqual(
      activities.filter((a) => a !== 'waitForBatch'),
      [
        'preflight',
        'submitScoreBatch',
        'collectScoreBatch',
        'submitScoreBatch',
        'collectScoreBatch',
        'scoreDifficulty',
        'segmentStages',
        'exportStages',
      ],
    );
    assert.ok(await h.store.exists(`${runId}/score/batch/round-01/results.jsonl`));
  });
});
