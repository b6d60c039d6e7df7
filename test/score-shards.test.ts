import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { before, describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { scoreDifficulty } from '../activities/score/score-difficulty';
import {
  mergeScoreShards,
  planScoreShards,
  scoreShard,
  shardLimits,
  type ScorePlan,
  type ShardedPlan,
} from '../activities/score/score-shards';
import { shardQueue } from '../common/constants';
import { DEFAULT_SCORE_SHARD_SLOTS, scoreShardSlots } from '../workers/create-workers';
import type { ScoreInput, ScoreResult } from '../activities/types';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import { startRun } from '../client';
import { startFakeOpenAI, type ChatRequest, type FakeOpenAI } from './helpers/fake-openai';
import { cleanUpFakeEndpoint, fakeEndpointEnv } from './helpers/endpoint-env';
import { startHarness } from './helpers/pipeline-harness';
import { replayAndRecord } from './helpers/histories';

const ROWS = 250;
const rowText = (i: number) => `Instruction number ${i} of the shard test.`;
const rowOf = (req: ChatRequest) => Number(/Instruction number (\d+) of/.exec(String(req.messages[0].content))?.[1]);
const answerOf = (i: number) => (i % 60 === 13 ? 'unsure' : String(1 + ((i * 7) % 41) / 10));
const lines = Array.from({ length: ROWS }, (_, i) =>
  JSON.stringify({ id: `r${i}`, instruction: rowText(i), input: i % 2 ? `in ${i}` : '', output: 'x' }),
);

describe('scoring in shards (scorer.shardRows)', function () {
  this.timeout(120_000);
  let llm: FakeOpenAI;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    llm = await startFakeOpenAI({ apiKey: 'sk-shards' });
    dir = mkdtempSync(join(tmpdir(), 'score-shards-'));
    writeFileSync(join(dir, 'rows.jsonl'), `${lines.join('\n')}\n`);
    env = fakeEndpointEnv(llm, 'sk-shards', dir);
  });
  cleanUpFakeEndpoint(() => ({ llm, dir }));

  const inputFor = (store: string, scorer: Record<string, unknown>, dataset = 'rows.jsonl'): ScoreInput => {
    const cfg = resolvePipelineInput(
      {
        dataset: join(dir, dataset),
        store: join(dir, store),
        runId: 'run',
        scorer: { cache: false, parseRetries: 0, maxFailedFraction: 0.1, concurrency: 8, ...scorer },
      },
      'wf',
      env,
    );
    return {
      runId: cfg.runId,
      store: cfg.store,
      dataset: cfg.dataset,
      datasetFormat: cfg.datasetFormat,
      scorer: cfg.scorer,
    };
  };
  const mock = () => new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  const deps = () => ({ ...depsFromEnv(env), env });
  const text = (store: string, key: string) => readFileSync(join(dir, store, 'run', key), 'utf8');
  /** The manifest without its time; the result without the store's location. */
  const manifestOf = (store: string) =>
    text(store, 'score/manifest.json')
      .replace(/"createdAt": "[^"]*"/, '')
      .split(pathToFileURL(join(dir, store)).href)
      .join('STORE');

  async function shardedPlan(input: ScoreInput, shardRows: number): Promise<ShardedPlan> {
    const plan: ScorePlan = await mock().run(() => planScoreShards(deps(), { ...input, shardRows }));
    assert.ok(plan.sharded);
    return plan;
  }

  /** What the workflow does with a shard size, step by step (scoreInShards). */
  async function scoreSharded(input: ScoreInput, shardRows: number, failShard?: number): Promise<ScoreResult> {
    const plan = await shardedPlan(input, shardRows);
    await scoreShards(input, plan, failShard);
    return (await mock().run(() => mergeScoreShards(deps(), { ...input, plan }))) as ScoreResult;
  }

  async function scoreShards(input: ScoreInput, plan: ShardedPlan, failShard?: number): Promise<void> {
    await Promise.all(
      Array.from({ length: plan.shards }, (_, shard) =>
        shard === failShard ? undefined : mock().run(() => scoreShard(deps(), { ...input, plan, shard })),
      ),
    );
  }

  const shardFiles = (store: string, plan: ShardedPlan) =>
    join(dir, store, 'run', 'score', 'shards', plan.inputsHash.slice(0, 12));

  it('writes the same scores.jsonl, manifest and result as one activity', async () => {
    llm.handle((req) => ({ delayMs: (rowOf(req) * 13) % 7, then: { content: answerOf(rowOf(req)) } }));
    const scorer = { kind: 'openai', samples: 2, pricePerMillionTokens: { input: 1, output: 3 } };
    const one = (await mock().run(() => scoreDifficulty(deps(), inputFor('one', scorer)))) as ScoreResult;
    const sharded = await scoreSharded(inputFor('sharded', scorer), 90);
    assert.equal(one.failed, 4);
    assert.equal(text('sharded', 'score/scores.jsonl'), text('one', 'score/scores.jsonl'));
    assert.equal(text('sharded', 'score/dataset.jsonl'), text('one', 'score/dataset.jsonl'));
    assert.equal(manifestOf('sharded'), manifestOf('one'));
    const located = (r: ScoreResult, store: string) =>
      JSON.stringify(r)
        .split(pathToFileURL(join(dir, store)).href)
        .join('STORE');
    assert.equal(located(sharded, 'sharded'), located(one, 'one'));
    // 90 rows round up to whole parts of 100: three shards, the parts the one activity writes.
    assert.deepEqual(
      readdirSync(join(dir, 'sharded', 'run', 'score', 'parts')),
      readdirSync(join(dir, 'one', 'run', 'score', 'parts')),
    );
  });

  it("deletes the shards' files once the score step is committed; a retry after a crash before that finishes it", async () => {
    const asked: number[] = [];
    llm.handle((req) => {
      asked.push(rowOf(req));
      return { content: answerOf(rowOf(req)) };
    });
    const input = inputFor('cleanup', { kind: 'openai' });
    const plan = await shardedPlan(input, 100);
    await scoreShards(input, plan);
    const files = shardFiles('cleanup', plan);
    assert.equal(readdirSync(files).length, 10, readdirSync(files).join(', '));
    const before = join(dir, 'cleanup-before-merge');
    cpSync(files, before, { recursive: true });
    const merged = (await mock().run(() => mergeScoreShards(deps(), { ...input, plan }))) as ScoreResult;
    const scores = text('cleanup', 'score/scores.jsonl');
    assert.equal(existsSync(files), false);

    // The crash: the manifest committed, the shards' files not (or only partly) deleted.
    cpSync(before, files, { recursive: true });
    for (const f of readdirSync(files)) if (f.startsWith('rows-')) rmSync(join(files, f));
    asked.length = 0;
    const again = (await mock().run(() => mergeScoreShards(deps(), { ...input, plan }))) as ScoreResult;
    assert.deepEqual(again, merged);
    assert.equal(text('cleanup', 'score/scores.jsonl'), scores);
    assert.equal(existsSync(files), false);
    // A resumed run: its plan leaves the committed step to the one activity, which returns it without a request.
    const replanned: ScorePlan = await mock().run(() => planScoreShards(deps(), { ...input, shardRows: 100 }));
    assert.deepEqual(replanned, { sharded: false, rows: ROWS });
    const resumed = (await mock().run(() => scoreDifficulty(deps(), input))) as ScoreResult;
    assert.deepEqual(resumed, merged);
    assert.deepEqual(asked, []);
  });

  it("shares the spending limits by each shard's estimate: a shard of long rows gets what its rows cost", async () => {
    // Rows 0-99 short, rows 100-199 long: the second shard's estimate is most of the step's.
    // Words of 4 letters: the endpoint's usage (a token a word) is 0.8 of the estimate (4 characters a token).
    const long = 'lore ipsu dolo amet cons adip '.repeat(80);
    writeFileSync(
      join(dir, 'uneven.jsonl'),
      Array.from({ length: 200 }, (_, i) =>
        JSON.stringify({ id: `u${i}`, instruction: rowText(i), input: i < 100 ? '' : long, output: 'x' }),
      ).join('\n') + '\n',
    );
    llm.handle(() => ({ content: '3' }));
    const price = { input: 2, output: 6 };
    const probe = await shardedPlan(
      inputFor('uneven-probe', { kind: 'openai', pricePerMillionTokens: price }, 'uneven.jsonl'),
      100,
    );
    const e = probe.estimate!;
    assert.equal(probe.shards, 2);
    assert.equal(
      probe.shardPromptTokens!.reduce((a, b) => a + b, 0),
      e.promptTokens,
    );
    const longShare = (probe.shardPromptTokens![1] + e.outputTokens / 2) / e.totalTokens;
    assert.ok(longShare > 0.75, `${longShare}`);

    // Each shard's limits add up to the step's; the long shard's share is its estimate's, for tokens and dollars.
    const scorer = {
      ...inputFor('uneven-probe', { kind: 'openai', pricePerMillionTokens: price }).scorer,
      maxTokens: 1000,
      maxCostUsd: 1,
    };
    const shares = [0, 1].map((shard) => shardLimits(scorer, probe, shard, probe.shardPromptTokens![shard]));
    assert.ok(Math.abs(shares[0].maxTokens! + shares[1].maxTokens! - 1000) < 1e-6);
    assert.ok(Math.abs(shares[0].maxCostUsd! + shares[1].maxCostUsd! - 1) < 1e-9);
    assert.ok(Math.abs(shares[1].maxTokens! - 1000 * longShare) < 1e-6);
    assert.ok(shares[1].maxCostUsd! > 0.75);

    // A limit the whole step fits under (its estimate, rounded up) completes; split by rows it would stop the long shard.
    const input = inputFor('uneven', { kind: 'openai', maxTokens: Math.ceil(e.totalTokens) }, 'uneven.jsonl');
    const plan = await shardedPlan(input, 100);
    const { shardPromptTokens: _, ...byRows } = plan;
    await assert.rejects(
      mock().run(() => scoreShard(deps(), { ...input, plan: byRows, shard: 1 })),
      /input\.scorer\.maxTokens: the scoring step stopped before its next request/,
    );
    const merged = await scoreSharded(input, 100);
    assert.equal(merged.rows, 200);
    assert.equal(merged.failed, 0);
  });

  it('a dataset not above the shard size is left to the one activity', async () => {
    const plan = await mock().run(() =>
      planScoreShards(deps(), { ...inputFor('small', { kind: 'offline' }), shardRows: ROWS }),
    );
    assert.deepEqual(plan, { sharded: false, rows: ROWS });
  });

  it('a plan over a score step committed from other inputs is refused, one from the same inputs left to it', async () => {
    llm.handle((req) => ({ content: answerOf(rowOf(req)) }));
    const scorer = { kind: 'openai', maxFailedFraction: 0.1 };
    await mock().run(() => scoreDifficulty(deps(), inputFor('committed', scorer)));
    const before = text('committed', 'score/dataset.jsonl');
    const same: ScorePlan = await mock().run(() =>
      planScoreShards(deps(), { ...inputFor('committed', scorer), shardRows: 100 }),
    );
    assert.deepEqual(same, { sharded: false, rows: ROWS });
    await assert.rejects(
      mock().run(() =>
        planScoreShards(deps(), { ...inputFor('committed', { ...scorer, samples: 2 }), shardRows: 100 }),
      ),
      /was produced from different inputs/,
    );
    assert.equal(text('committed', 'score/dataset.jsonl'), before);
  });

  it("a shard's retry asks only the rows of its parts that were not committed", async () => {
    const input = inputFor('retry', { kind: 'openai', maxFailedFraction: 0.1 });
    const plan = await shardedPlan(input, 200);
    assert.equal(plan.shards, 2);
    // Shard 1 (rows 0-199, parts 0 and 1) dies when row 180 is asked: a refused key fails the attempt at once.
    llm.handle((req) =>
      rowOf(req) === 180 ? { delayMs: 200, then: { status: 401 } } : { content: answerOf(rowOf(req)) },
    );
    await assert.rejects(
      mock().run(() => scoreShard(deps(), { ...input, plan, shard: 0 })),
      /API key/,
    );
    const parts = readdirSync(join(dir, 'retry', 'run', 'score', 'parts'));
    assert.equal(parts.length, 1, parts.join(', '));
    assert.match(parts[0], /-00000\.jsonl$/);

    const asked: number[] = [];
    llm.handle((req) => {
      asked.push(rowOf(req));
      return { content: answerOf(rowOf(req)) };
    });
    await mock().run(() => scoreShard(deps(), { ...input, plan, shard: 0 }));
    assert.deepEqual(
      [...asked].sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => 100 + i),
    );
    // A committed shard is not scored again.
    asked.length = 0;
    await mock().run(() => scoreShard(deps(), { ...input, plan, shard: 0 }));
    assert.deepEqual(asked, []);
    await mock().run(() => scoreShard(deps(), { ...input, plan, shard: 1 }));
    assert.equal(asked.length, 50);
    const merged = (await mock().run(() => mergeScoreShards(deps(), { ...input, plan }))) as ScoreResult;
    assert.equal(merged.rows, ROWS);
  });

  it('a merge before every shard committed fails, and too many failures drop the shards that hold them', async () => {
    llm.handle((req) => ({ content: rowOf(req) === 120 ? '??' : '3' }));
    const input = inputFor('failing', { kind: 'openai', maxFailedFraction: 0 });
    await assert.rejects(scoreSharded(input, 100, 2), /shard 3 is not committed/);
    const plan = await shardedPlan(input, 100);
    await mock().run(() => scoreShard(deps(), { ...input, plan, shard: 2 }));
    await assert.rejects(
      mock().run(() => mergeScoreShards(deps(), { ...input, plan })),
      /1 of 250 difficulty answers could not be parsed \(limit 0%\); e\.g\. row r120: "\?\?"/,
    );
    const shardDir = join(dir, 'failing', 'run', 'score', 'shards', plan.inputsHash.slice(0, 12));
    const committed = (n: string) => existsSync(join(shardDir, `shard-${n}`, 'manifest.json'));
    // Row 120 is in shard 2: only its manifest is dropped, and only part 1 (rows 100-199).
    assert.deepEqual(['00001', '00002', '00003'].map(committed), [true, false, true]);
    assert.deepEqual(
      readdirSync(join(dir, 'failing', 'run', 'score', 'parts')).map((f) => f.slice(-11)),
      ['00000.jsonl', '00002.jsonl'],
    );
  });
});

describe('PIFT_SCORE_SHARD_SLOTS', () => {
  it('sets the shards a CPU worker scores at once: a small default, a positive integer otherwise', () => {
    assert.equal(scoreShardSlots({}), DEFAULT_SCORE_SHARD_SLOTS);
    assert.equal(scoreShardSlots({ PIFT_SCORE_SHARD_SLOTS: ' ' }), DEFAULT_SCORE_SHARD_SLOTS);
    assert.equal(scoreShardSlots({ PIFT_SCORE_SHARD_SLOTS: '1' }), 1);
    assert.equal(scoreShardSlots({ PIFT_SCORE_SHARD_SLOTS: '16' }), 16);
    for (const bad of ['0', '-1', '1.5', 'two'])
      assert.throws(
        () => scoreShardSlots({ PIFT_SCORE_SHARD_SLOTS: bad }),
        /PIFT_SCORE_SHARD_SLOTS must be a positive/,
      );
  });
});

describe('a run with scorer.shardRows on Temporal', function () {
  this.timeout(5 * 60_000);

  it('scores the dataset in shards on the shard queue, one at a time with one slot, as an unsharded run would', async () => {
    const h = await startHarness({ workerEnv: { PIFT_SCORE_SHARD_SLOTS: '1' } });
    const answer = (req: ChatRequest) => ({ content: String(1 + (rowOf(req) % 40) / 10) });
    // Requests each held a little while, counted per shard: a request while another shard's is held means two shards
    // were being scored at once.
    const held = new Map<number, number>();
    let overlaps = 0;
    let requests = 0;
    h.llm.handle(async (req) => {
      const shard = Math.floor(rowOf(req) / 100);
      requests += 1;
      if ([...held].some(([other, n]) => other !== shard && n > 0)) overlaps += 1;
      held.set(shard, (held.get(shard) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, 20));
      held.set(shard, held.get(shard)! - 1);
      return answer(req);
    });
    const dataset = await h.upload('datasets/shards.jsonl', `${lines.join('\n')}\n`);
    const start = (runId: string, scorer: Record<string, unknown>) =>
      startRun(
        h.temporal.client,
        {
          dataset,
          runId,
          store: h.storeUri,
          gpuTaskQueue: h.gpuQueue,
          scorer: { kind: 'openai', cache: false, ...scorer },
          training: { mode: 'export-only' },
        },
        { taskQueue: h.cpuQueue },
      );
    const sharded = await start('sharded-run', { shardRows: 100 });
    await sharded.handle.result();
    await replayAndRecord(h.temporal.client, sharded.handle.workflowId, 'sharded-run');
    assert.equal(requests, ROWS);
    assert.equal(overlaps, 0);
    // The shards' files are gone from the store (S3 here) once the step is committed.
    assert.deepEqual(await h.store.list('sharded-run/score/shards'), []);
    h.llm.handle(answer);
    const plain = await start('plain-run', {});
    await plain.handle.result();
    assert.equal(
      await h.store.getText('sharded-run/score/scores.jsonl'),
      await h.store.getText('plain-run/score/scores.jsonl'),
    );
    const history = await sharded.handle.fetchHistory();
    const scheduled = (history.events ?? []).flatMap((e) => {
      const a = e.activityTaskScheduledEventAttributes;
      const input = a?.input?.payloads?.[0]?.data;
      return a ? [{ name: a.activityType?.name, queue: a.taskQueue?.name, input: JSON.parse(String(input)) }] : [];
    });
    const activities = scheduled.map((a) => a.name);
    const shards = scheduled.filter((a) => a.name === 'scoreShard');
    assert.deepEqual(
      shards.map((a) => a.queue),
      Array(3).fill(shardQueue(h.cpuQueue)),
    );
    // Each shard is handed its own estimate, not the plan's list of every shard's.
    for (const { input } of shards) {
      assert.equal(typeof input.promptTokens, 'number');
      assert.equal(input.plan.shardPromptTokens, undefined);
    }
    assert.deepEqual(activities, [
      'preflight',
      'planScoreShards',
      'scoreShard',
      'scoreShard',
      'scoreShard',
      'mergeScoreShards',
      'segmentStages',
      'exportStages',
    ]);
  });
});
