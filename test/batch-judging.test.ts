import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { before, describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { sha256 } from '../activities/artifacts/hashing';
import { collectJudgeBatch, submitJudgeBatch } from '../activities/evaluate/batch-judging';
import { evaluate } from '../activities/evaluate/evaluate';
import { judgeCacheMaterial } from '../activities/evaluate/judge-answers';
import { buildJudgeRequest } from '../activities/evaluate/judge-prompt';
import { cacheKey } from '../activities/llm/answer-cache';
import { waitForBatch, type BatchCollected } from '../activities/llm/batch-rounds';
import type { EvaluateInput, EvaluateResult } from '../activities/types';
import { startFakeOpenAI, type ChatRequest, type FakeOpenAI } from './helpers/fake-openai';
import { cleanUpFakeEndpoint, fakeEndpointEnv, untilFinished } from './helpers/endpoint-env';

const PROMPTS = 12;
const BENCHES = ['alpha', 'beta'];
const MODELS = ['stage-1', 'stage-2'];

const promptOf = (req: ChatRequest) => Number(/Question \w+ (\d+)/.exec(String(req.messages[1].content))?.[1] ?? -1);
/** A verdict that depends only on the two answers shown. */
const verdictFor = (req: ChatRequest) => {
  const answers = [...String(req.messages[1].content).matchAll(/Answer\]\n([\s\S]*?)\n\n\[The End/g)].map((m) => m[1]);
  return `${1 + (answers[0].length % 9)} ${1 + (answers[1].length % 9)}`;
};

describe('judging through the OpenAI Batch API', function () {
  this.timeout(60_000);
  let llm: FakeOpenAI;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let base: Omit<EvaluateInput, 'runId' | 'store'>;
  let run = 0;

  before(async () => {
    llm = await startFakeOpenAI({ apiKey: 'sk-batch-judge' });
    dir = mkdtempSync(join(tmpdir(), 'batch-judging-'));
    mkdirSync(join(dir, 'in'));
    const file = (name: string, rows: unknown[]) => {
      const path = join(dir, 'in', name);
      writeFileSync(path, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
      return path;
    };
    const ids = Array.from({ length: PROMPTS }, (_, i) => `p${i}`);
    const benchmarks = BENCHES.map((b) => ({
      name: b,
      uri: file(
        `${b}.jsonl`,
        ids.map((id, i) => ({ id, instruction: `Question ${b} ${i}`, input: '' })),
      ),
      prompts: PROMPTS,
      withReferences: 0,
    }));
    const answers = (model: string) =>
      Object.fromEntries(
        BENCHES.map((b) => [
          b,
          file(
            `${model}-${b}.jsonl`,
            ids.map((id, i) => ({ id, answer: `${model} says ${'x'.repeat((i * 5) % 13)}` })),
          ),
        ]),
      );
    base = {
      benchmarks,
      baseline: { name: 'one-off', answers: answers('one-off'), reused: false },
      candidates: MODELS.map((m) => ({ name: m, answers: answers(m), reused: false })),
      judge: 'openai',
      concurrency: 8,
    };
    env = fakeEndpointEnv(llm, 'sk-batch-judge', dir);
  });
  cleanUpFakeEndpoint(() => ({ llm, dir }));

  const deps = () => ({ ...depsFromEnv(env), env });
  const activity = <T>(fn: () => Promise<T>) =>
    new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') }).run(fn) as Promise<T>;
  /** A run in a store of its own (the answer cache lives in the store). */
  const inputFor = (extra: Partial<EvaluateInput> = {}): EvaluateInput => {
    run += 1;
    return { ...base, runId: 'run', store: join(dir, `store-${run}`), ...extra };
  };
  const judge = (input: EvaluateInput) => activity(() => evaluate(deps(), input)) as Promise<EvaluateResult>;
  const file = (input: EvaluateInput, name: string) => readFileSync(join(input.store, 'run', 'evaluate', name), 'utf8');
  const chatRequests = () => llm.requests.filter((r) => r.path.endsWith('/chat/completions')).length;
  const judgments = PROMPTS * BENCHES.length * MODELS.length;

  async function rounds(input: EvaluateInput, resubmits = 3): Promise<BatchCollected[]> {
    const done: BatchCollected[] = [];
    for (let round = 0; round <= resubmits; round++) {
      const sent = await activity(() => submitJudgeBatch(deps(), { ...input, round }));
      if (!sent.batchId) break;
      const ref = { batchId: sent.batchId, setting: 'input.evaluation.mode' };
      await untilFinished(() => activity(() => waitForBatch(env, ref)));
      const collected = await activity(() => collectJudgeBatch(deps(), { ...input, round, batchId: sent.batchId! }));
      done.push(collected);
      if (!collected.pending) break;
    }
    return done;
  }

  /** Replies that do not parse the first time each request is asked, for prompts 0-3. */
  const flaky = () => {
    const asked = new Map<string, number>();
    llm.handle((req) => {
      const key = String(req.messages[1].content);
      const n = (asked.get(key) ?? 0) + 1;
      asked.set(key, n);
      return promptOf(req) < 4 && n === 1 ? { content: 'Assistant 2 is better.' } : { content: verdictFor(req) };
    });
  };

  it('keeps the answer cache keys of the online path', () => {
    // The key as the evaluate step built it before it was shared: its bytes are every cached reply's key.
    const { promptVersion, messages, ...decoding } = buildJudgeRequest('q', 'a', 'b', { model: 'judge' });
    const before = { ...decoding, prompt: promptVersion, messages: sha256(JSON.stringify(messages)), parseRetries: 2 };
    assert.equal(cacheKey('judge', judgeCacheMaterial('judge', 'q', 'a', 'b', 2)), cacheKey('judge', before));
  });

  it('writes the same results and judgments as online judging, re-asks included, asking nothing online', async () => {
    flaky();
    const online = inputFor({ cache: false });
    await judge(online);
    const onlineAsks = chatRequests();
    llm.reset();
    flaky();
    // The first batch also loses some requests: one fails on the endpoint's side, others expire.
    llm.batch.behave({
      fate: (customId, batch) =>
        batch === 1 && customId.endsWith('0') ? 'fail' : batch === 1 && customId.endsWith('1') ? 'expire' : 'answer',
    });
    const batch = inputFor();
    const done = await rounds(batch);
    assert.ok(done.length >= 2, `${done.length} rounds`);
    assert.ok(done[0].retry > 0 && done[0].unparseable > 0, JSON.stringify(done[0]));
    // An unparseable reply is asked again after the judge's reply and a correction, as online (askAgain).
    const second = llm.batch.files.get(llm.batch.batches[1].inputFileId)!.text.trim().split('\n');
    const reasked = second
      .map((l) => (JSON.parse(l) as { body: { messages: ChatRequest['messages'] } }).body.messages)
      .filter((m) => m.length === 4);
    assert.equal(reasked.length, done[0].unparseable);
    for (const m of reasked) {
      assert.deepEqual(m[2], { role: 'assistant', content: 'Assistant 2 is better.' });
      assert.match(String(m[3].content), /two scores alone on one line/);
    }
    assert.equal(done.at(-1)!.pending, 0);
    // Every (model, benchmark, prompt, order) judgment went into the cache; equal requests are asked once.
    assert.equal(
      done.reduce((n, d) => n + d.cached, 0),
      llm.batch.files.get(llm.batch.batches[0].inputFileId)!.text.trim().split('\n').length,
    );
    assert.ok(llm.batch.batches[0].counts.total <= 2 * judgments);
    const result = await judge(batch);
    assert.equal(chatRequests(), 0, 'evaluate took every reply from the cache');
    assert.equal(file(batch, 'results.json'), file(online, 'results.json'));
    assert.equal(file(batch, 'results.md'), file(online, 'results.md'));
    for (const m of MODELS) {
      for (const b of BENCHES) {
        const dirOf = (i: EvaluateInput) => join(i.store, 'run', 'evaluate', 'judgments', m);
        const name = (i: EvaluateInput) => readdirSync(dirOf(i)).find((f) => f.startsWith(`${b}.`))!;
        assert.equal(
          readFileSync(join(dirOf(batch), name(batch)), 'utf8'),
          readFileSync(join(dirOf(online), name(online)), 'utf8'),
        );
      }
    }
    assert.ok(onlineAsks > 2 * judgments, 'the online run re-asked');
    assert.deepEqual(Object.keys(result.winRates), MODELS);
  });

  it("asks each distinct judgment once, in the place it first comes in the evaluate step's order", async () => {
    llm.reset();
    llm.handle((req) => ({ content: verdictFor(req) }));
    // A second candidate with the first one's answers: every one of its judgments repeats one asked before.
    const [first] = base.candidates;
    const input = inputFor({ candidates: [first, { ...first, name: 'copy' }] });
    const sent = await activity(() => submitJudgeBatch(deps(), { ...input, round: 0 }));
    const lines = llm.batch.files.get(llm.batch.batches[0].inputFileId)!.text.trim().split('\n');
    const requests = lines.map((l) => JSON.parse(l) as { custom_id: string; body: ChatRequest });
    assert.equal(sent.requests, PROMPTS * BENCHES.length * 2);
    assert.equal(new Set(requests.map((r) => r.custom_id)).size, requests.length);
    const walked = BENCHES.flatMap((b) => Array.from({ length: PROMPTS }, (_, i) => [`${b} ${i}`, `${b} ${i}`])).flat();
    const asked = requests.map((r) => /Question (\w+ \d+)/.exec(String(r.body.messages[1].content))![1]);
    assert.deepEqual(asked, walked);
    // Order 1 shows the baseline's answer first, order 2 the candidate's.
    const firstAnswer = (r: (typeof requests)[number]) =>
      /Answer\]\n(\S+)/.exec(String(r.body.messages[1].content))![1];
    assert.deepEqual(requests.slice(0, 2).map(firstAnswer), ['one-off', first.name]);
  });

  it('judges nothing in batches for the offline judge, and refuses a batch without the cache', async () => {
    const offline = await activity(() => submitJudgeBatch(deps(), { ...inputFor({ judge: 'offline' }), round: 0 }));
    assert.equal(offline.batchId, undefined);
    await assert.rejects(
      activity(() => submitJudgeBatch(deps(), { ...inputFor({ cache: false }), round: 0 })),
      /input\.evaluation\.mode "batch" needs input\.evaluation\.cache/,
    );
    assert.equal(llm.batch.batches.length, 0);
  });
});
