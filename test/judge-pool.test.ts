import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { after, afterEach, before, describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { evaluate } from '../activities/evaluate/evaluate';
import type { EvaluateInput, EvaluateResult } from '../activities/types';
import { startFakeOpenAI, type ChatRequest, type FakeOpenAI } from './helpers/fake-openai';

const PROMPTS = 40;
const BENCHES = ['alpha', 'beta'];
const MODELS = ['stage-1', 'stage-2', 'stage-3'];

/** Which prompt (and answers) a judge request is about. */
const promptOf = (req: ChatRequest) => Number(/Question \w+ (\d+)/.exec(String(req.messages[1].content))?.[1] ?? -1);
/** A verdict that depends only on the two answers shown, so both orders and every run agree. */
const verdictFor = (req: ChatRequest) => {
  const answers = [...String(req.messages[1].content).matchAll(/Answer\]\n([\s\S]*?)\n\n\[The End/g)].map((m) => m[1]);
  return `${1 + (answers[0].length % 9)} ${1 + (answers[1].length % 9)}`;
};

describe('judging in one continuous pool', function () {
  this.timeout(60_000);
  let llm: FakeOpenAI;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let base: Omit<EvaluateInput, 'runId' | 'concurrency'>;
  let run = 0;

  before(async () => {
    llm = await startFakeOpenAI({ apiKey: 'sk-judge' });
    dir = mkdtempSync(join(tmpdir(), 'judge-pool-'));
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
      store: join(dir, 'store'),
      benchmarks,
      baseline: { name: 'one-off', answers: answers('one-off'), reused: false },
      candidates: MODELS.map((m) => ({ name: m, answers: answers(m), reused: false })),
      judge: 'openai',
    };
    env = {
      PIFT_OPENAI_BASE_URL: llm.baseURL,
      OPENAI_API_KEY: 'sk-judge',
      PIFT_FILE_ROOTS: dir,
      PIFT_WORKDIR: join(dir, 'work'),
    };
  });
  afterEach(() => llm.reset());
  after(async () => {
    await llm.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const judge = (extra: Partial<EvaluateInput> & { concurrency: number }) => {
    const runId = `judge-${++run}`;
    const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const deps = { ...depsFromEnv(env), env };
    const input = { ...base, runId, cache: false, ...extra };
    const result = mock.run(() => evaluate(deps, input)) as Promise<EvaluateResult>;
    const file = (name: string) => readFileSync(join(dir, 'store', runId, 'evaluate', name), 'utf8');
    return { result, file };
  };

  it('stores the same results whatever the concurrency and the order replies arrive in', async () => {
    llm.handle((req) => ({ delayMs: (promptOf(req) * 7) % 11, then: { content: verdictFor(req) } }));
    const one = judge({ concurrency: 1 });
    await one.result;
    let inFlight = 0;
    let most = 0;
    llm.handle(async (req) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 250 + ((promptOf(req) * 7) % 11)));
      inFlight -= 1;
      return { content: verdictFor(req) };
    });
    const many = judge({ concurrency: 64 });
    const result = await many.result;
    // 64 requests in flight across (model, benchmark) pairs, each pair having only 80.
    assert.ok(most >= 60, `at most ${most} in flight`);
    assert.equal(one.file('results.json'), many.file('results.json'));
    assert.equal(one.file('results.md'), many.file('results.md'));
    assert.deepEqual(Object.keys(result.winRates), MODELS);
    const json = JSON.parse(many.file('results.json'));
    assert.deepEqual(json.comparisons[0].benchmarks[0].judgeReplies, { reasked: 0, stillFailed: 0 });
    assert.match(many.file('results.md'), /prompts re-asked \/ still failed/);
  });

  /** Replies that do not parse the first time they are asked for prompts 0-9; prompt 0's never parse. */
  const flaky = () => {
    const asked = new Map<string, number>();
    llm.handle((req) => {
      const key = String(req.messages[1].content);
      const n = (asked.get(key) ?? 0) + 1;
      asked.set(key, n);
      const p = promptOf(req);
      if (p === 0 || (p < 10 && n === 1)) return { content: 'Assistant 2 is better.' };
      return { content: verdictFor(req) };
    });
  };

  it('re-asks unparseable replies and reports how many were re-asked and still failed', async () => {
    flaky();
    const { result, file } = judge({ concurrency: 16 });
    await result;
    const json = JSON.parse(file('results.json'));
    for (const row of json.comparisons) {
      for (const b of row.benchmarks) {
        assert.deepEqual(b.judgeReplies, { reasked: 10, stillFailed: 1 });
        assert.equal(b.counts.failed, 1);
      }
    }
    assert.deepEqual(json.judgeReplies, { parseRetries: 2 });
    assert.match(file('results.md'), /\| stage-1 \| 10 \/ 1 \| 10 \/ 1 \|/);
  });

  it('re-asks an unparseable reply with a corrective turn, not the identical request', async () => {
    const asked: ChatRequest[] = [];
    llm.handle((req) => {
      if (promptOf(req) !== 3) return { content: verdictFor(req) };
      asked.push(req);
      // A judge that explains itself until told to give the two scores alone.
      return { content: req.messages.length === 2 ? 'Assistant 1 is better.' : verdictFor(req) };
    });
    const { result, file } = judge({
      concurrency: 4,
      candidates: base.candidates.slice(0, 1),
      benchmarks: base.benchmarks.slice(0, 1),
    });
    await result;
    // Both orders of the one prompt: asked, then re-asked once with the judge's reply and a correction.
    assert.equal(asked.length, 4);
    const reasks = asked.filter((r) => r.messages.length === 4);
    assert.equal(reasks.length, 2);
    for (const r of reasks) {
      assert.deepEqual(r.messages[2], { role: 'assistant', content: 'Assistant 1 is better.' });
      assert.equal(r.messages[3].role, 'user');
      assert.match(String(r.messages[3].content), /two scores alone on one line/);
    }
    const [row] = JSON.parse(file('results.json')).comparisons;
    assert.deepEqual(row.benchmarks[0].judgeReplies, { reasked: 1, stillFailed: 0 });
  });

  it("counts an unparseable reply as failed at once with the paper's strict counting", async () => {
    flaky();
    const { result, file } = judge({ concurrency: 16, reaskUnparseable: false });
    await result;
    const json = JSON.parse(file('results.json'));
    for (const row of json.comparisons) {
      for (const b of row.benchmarks) {
        assert.deepEqual(b.judgeReplies, { reasked: 0, stillFailed: 10 });
        assert.equal(b.counts.failed, 10);
      }
    }
    assert.equal(llm.requests.length, MODELS.length * BENCHES.length * PROMPTS * 2);
  });

  it('a new run judging the same answers takes every reply from the cache and asks nothing', async () => {
    flaky();
    const first = judge({ concurrency: 16, cache: true });
    await first.result;
    const asked = llm.requests.length;
    assert.ok(asked > MODELS.length * BENCHES.length * PROMPTS * 2);
    llm.reset();
    // Only prompt 0's replies never parsed, so only they are asked again (3 asks per order, 2 orders, 6 pairs).
    llm.handle(() => ({ content: 'Assistant 2 is better.' }));
    const second = judge({ concurrency: 16, cache: true });
    await second.result;
    assert.equal(llm.requests.length, MODELS.length * BENCHES.length * 2 * 3);
    assert.equal(second.file('results.json'), first.file('results.json'));
  });
});
