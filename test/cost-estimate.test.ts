import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { before, describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { evaluate } from '../activities/evaluate/evaluate';
import {
  buildJudgeMessages,
  JUDGE_CRITERIA,
  JUDGE_DECODING,
  JUDGE_SYSTEM_PROMPT,
  JUDGE_USER_TEMPLATE,
} from '../activities/evaluate/judge-prompt';
import { estimateJudging, SpendMeter } from '../activities/llm/cost-estimate';
import { estimateScoring } from './helpers/scoring-estimate';
import { scoreDifficulty } from '../activities/score/score-difficulty';
import { SCORE_DECODING, SCORE_PROMPT_TEMPLATE, scoreMessagesFor } from '../activities/score/score-prompt';
import type { EvaluateInput, EvaluateResult, ScoreResult } from '../activities/types';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import { InvalidDataError } from '../common/failures';
import { startFakeOpenAI, type FakeOpenAI, type RecordedRequest } from './helpers/fake-openai';
import { cleanUpFakeEndpoint, fakeEndpointEnv } from './helpers/endpoint-env';

const alpaca = (id: string, instruction: string, input = '') => ({ id, instruction, input, output: 'x' });
/** The fake server's usage: words of the messages, words of the reply. */
const words = (text: string) => text.split(/\s+/).filter(Boolean).length;
const promptWords = (r: RecordedRequest) =>
  words(r.chat!.messages.map((m) => (typeof m.content === 'string' ? m.content : '')).join(' '));

describe('cost estimate', () => {
  it('scoring: every row at 4 characters a token, times samples, plus 8 answer tokens each', () => {
    // The template's placeholder `{text}` (6 characters) is replaced by the row's text.
    const base = SCORE_PROMPT_TEMPLATE.length - '{text}'.length;
    const rows = [alpaca('a', 'abcd'), alpaca('b', 'Sort these.', '3 1 2')];
    const prompts = [Math.ceil((base + 4) / 4), Math.ceil((base + 'Sort these.\n3 1 2'.length) / 4)];
    const e = estimateScoring(rows.map(scoreMessagesFor), {
      samples: 3,
      price: { input: 10, output: 30 },
      parseRetries: 2,
      maxTokens: SCORE_DECODING.max_tokens,
    });
    assert.equal(e.requests, 6);
    assert.equal(e.promptTokens, 3 * (prompts[0] + prompts[1]));
    assert.equal(e.outputTokens, 6 * 8);
    assert.equal(e.totalTokens, e.promptTokens + 48);
    assert.equal(e.costUsd, (e.promptTokens * 10 + 48 * 30) / 1e6);
    assert.match(e.tokenCounting, /approximate/);
    // Without a price: tokens only.
    assert.equal(
      estimateScoring(rows.map(scoreMessagesFor), { samples: 1, parseRetries: 0, maxTokens: SCORE_DECODING.max_tokens })
        .costUsd,
      undefined,
    );
  });

  it('judging: each prompt in both orders, system and user message, 256 answer tokens each', () => {
    const placeholders = '{question}{answer_1}{answer_2}{criteria}'.length;
    const text =
      JUDGE_SYSTEM_PROMPT.length +
      JUDGE_USER_TEMPLATE.length -
      placeholders +
      JUDGE_CRITERIA.length +
      'Why?'.length +
      'Because.'.length +
      'No.'.length;
    const e = estimateJudging([buildJudgeMessages('Why?', 'No.', 'Because.')], {
      price: { input: 2, output: 4 },
      parseRetries: 0,
      maxTokens: JUDGE_DECODING.max_tokens,
    });
    assert.equal(e.requests, 2);
    assert.equal(e.promptTokens, 2 * Math.ceil(text / 4));
    assert.equal(e.outputTokens, 512);
    assert.equal(e.costUsd, (e.promptTokens * 2 + 512 * 4) / 1e6);
  });

  it('meter: admits within the limits, counts reported usage, stops before passing them', () => {
    const meter = new SpendMeter(
      { maxTokens: 100, pricePerMillionTokens: { input: 1, output: 2 }, setting: 'input.scorer' },
      'scoring',
    );
    const a = meter.admit({ prompt: 30, output: 10 });
    const b = meter.admit({ prompt: 30, output: 10 });
    // Two in flight (80 tokens): a third could pass 100.
    assert.throws(() => meter.admit({ prompt: 20, output: 10 }), /input\.scorer\.maxTokens: the scoring step stopped/);
    meter.settle(a, { usage: { prompt_tokens: 5, completion_tokens: 1 } });
    meter.settle(b, 'failed');
    meter.settle(meter.admit({ prompt: 30, output: 10 }), {});
    assert.deepEqual(meter.total(), {
      requests: 2,
      promptTokens: 35,
      completionTokens: 11,
      costUsd: (35 * 1 + 11 * 2) / 1e6,
      estimatedReplies: 1,
    });
  });
});

describe('cost limits of the score and evaluate steps', function () {
  this.timeout(60_000);
  let llm: FakeOpenAI;
  let dir: string;
  let dataset: string;
  let env: NodeJS.ProcessEnv;
  let run = 0;

  before(async () => {
    llm = await startFakeOpenAI({ apiKey: 'sk-cost' });
    dir = mkdtempSync(join(tmpdir(), 'cost-'));
    dataset = join(dir, 'rows.jsonl');
    const rows = Array.from({ length: 20 }, (_, i) => alpaca(`r${i}`, `Instruction ${i}: add ${i} and ${i + 1}.`));
    writeFileSync(dataset, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
    env = fakeEndpointEnv(llm, 'sk-cost', dir);
  });
  cleanUpFakeEndpoint(() => ({ llm, dir }));

  const score = (scorer: Record<string, unknown>, rows = dataset) => {
    const cfg = resolvePipelineInput(
      { dataset: rows, store: join(dir, 'store'), scorer: { kind: 'openai', cache: false, ...scorer } },
      `cost-${++run}`,
      env,
    );
    const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    return mock.run(() =>
      scoreDifficulty(
        { ...depsFromEnv(env), env },
        {
          runId: cfg.runId,
          store: cfg.store,
          dataset: cfg.dataset,
          datasetFormat: cfg.datasetFormat,
          scorer: cfg.scorer,
        },
      ),
    ) as Promise<ScoreResult>;
  };
  const estimateOf = () => {
    const rows = Array.from({ length: 20 }, (_, i) => alpaca(`r${i}`, `Instruction ${i}: add ${i} and ${i + 1}.`));
    return estimateScoring(rows.map(scoreMessagesFor), {
      samples: 1,
      price: { input: 30, output: 60 },
      parseRetries: 2,
      maxTokens: SCORE_DECODING.max_tokens,
    });
  };

  it('refuses a scoring run whose estimate is above maxCostUsd before any request', async () => {
    const e = estimateOf();
    const err = await score({ pricePerMillionTokens: { input: 30, output: 60 }, maxCostUsd: e.costUsd! / 2 }).then(
      () => assert.fail('scored over the limit'),
      (x: unknown) => x,
    );
    assert.ok(err instanceof InvalidDataError, String(err));
    assert.equal(err.where.field, 'input.scorer.maxCostUsd');
    assert.match(err.message, new RegExp(`nothing was sent .*20 requests, ~${e.promptTokens} prompt`));
    assert.equal(llm.requests.length, 0);
  });

  it('fails on a repeated id before any request, though the check ends after the last row', async () => {
    const repeated = join(dir, 'repeated.jsonl');
    const rows = Array.from({ length: 20 }, (_, i) => alpaca(i === 19 ? 'r2' : `r${i}`, `Instruction ${i}.`));
    writeFileSync(repeated, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
    const asked = llm.requests.length;
    await assert.rejects(score({}, repeated), (err: unknown) => {
      assert.ok(err instanceof InvalidDataError, String(err));
      assert.equal(err.message, 'repeated.jsonl line 20: duplicate id in field "id" (first used on line 3)');
      return true;
    });
    assert.equal(llm.requests.length, asked);
  });

  it('refuses maxTokens below the estimate, and maxCostUsd without a price, before any request', async () => {
    await assert.rejects(
      score({ maxTokens: estimateOf().totalTokens - 1 }),
      /input\.scorer\.maxTokens: .*nothing was sent/,
    );
    await assert.rejects(
      score({ maxCostUsd: 100 }),
      /input\.scorer\.maxCostUsd needs input\.scorer\.pricePerMillionTokens/,
    );
    assert.equal(llm.requests.length, 0);
  });

  it('records the estimate and the usage the endpoint reported in the result', async () => {
    llm.handle(() => ({ content: '3 ' }));
    const e = estimateOf();
    const result = await score({ pricePerMillionTokens: { input: 30, output: 60 }, maxCostUsd: e.costUsd! * 2 });
    assert.equal(result.scored, 20);
    assert.deepEqual(result.cost!.estimate, e);
    const prompt = llm.requests.reduce((n, r) => n + promptWords(r), 0);
    assert.equal(llm.requests.length, 20);
    assert.deepEqual(result.cost!.spent, {
      requests: 20,
      promptTokens: prompt,
      completionTokens: 20,
      costUsd: (prompt * 30 + 20 * 60) / 1e6,
    });
  });

  it('stops a step whose real usage would pass maxTokens (re-asks are not in the estimate)', async () => {
    // Every answer is unparseable: each row is asked 3 times, three times the estimate's requests.
    llm.handle(() => ({ content: 'hard' }));
    const limit = estimateOf().totalTokens + 100;
    await assert.rejects(score({ maxTokens: limit, concurrency: 4 }), (err: Error) => {
      assert.match(err.message, /input\.scorer\.maxTokens: the scoring step stopped before its next request/);
      return true;
    });
    // Requests sent before the stop may still be on their way.
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(llm.requests.length > 20 && llm.requests.length < 60, `${llm.requests.length} requests`);
    // What was answered stayed within the limit, as the fake server counted it.
    const used = llm.requests.reduce((n, r) => n + promptWords(r) + 1, 0);
    assert.ok(used <= limit, `${used} > ${limit}`);
  });

  it('refuses a judging run over its limit before any request, and the offline judge costs nothing', async () => {
    mkdirSync(join(dir, 'in'), { recursive: true });
    const file = (name: string, rows: unknown[]) => {
      const path = join(dir, 'in', name);
      writeFileSync(path, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
      return path;
    };
    const ids = ['p0', 'p1', 'p2'];
    const bench = file(
      'bench.jsonl',
      ids.map((id, i) => ({ id, instruction: `Question ${i}`, input: '', reference: `${i}` })),
    );
    const answers = (model: string) => ({
      bench: file(
        `${model}.jsonl`,
        ids.map((id, i) => ({ id, answer: `${model} answers ${i}` })),
      ),
    });
    const input: EvaluateInput = {
      runId: `judge-cost-${++run}`,
      store: join(dir, 'store'),
      benchmarks: [{ name: 'bench', uri: bench, prompts: 3, withReferences: 3 }],
      baseline: { name: 'one-off', answers: answers('one-off'), reused: false },
      candidates: [{ name: 'stage-1', answers: answers('stage-1'), reused: false }],
      judge: 'openai',
      concurrency: 2,
      cache: false,
      pricePerMillionTokens: { input: 30, output: 60 },
      maxCostUsd: 0.01,
    };
    const mock = () => new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const deps = { ...depsFromEnv(env), env };
    // 3 prompts x 2 orders x (~206 prompt + 256 answer tokens): about 0.13 USD at these prices.
    await assert.rejects(
      mock().run(() => evaluate(deps, input)) as Promise<EvaluateResult>,
      (err: InvalidDataError) => {
        assert.equal(err.where.field, 'input.evaluation.maxCostUsd');
        assert.match(err.message, /the judging step would cost about \$0\.13, .*6 requests/);
        return true;
      },
    );
    assert.equal(llm.requests.length, 0);
    llm.handle(() => ({ content: '7 8' }));
    const ok = (await mock().run(() =>
      evaluate(deps, { ...input, runId: `judge-cost-${++run}`, maxCostUsd: 1 }),
    )) as EvaluateResult;
    assert.equal(ok.cost!.estimate.requests, 6);
    assert.equal(ok.cost!.spent.requests, 6);
    assert.equal(llm.requests.length, 6);
    const offline = (await mock().run(() =>
      evaluate(deps, { ...input, runId: `judge-cost-${++run}`, judge: 'offline', maxCostUsd: 1e-9 }),
    )) as EvaluateResult;
    assert.equal(offline.cost, undefined);
    assert.equal(llm.requests.length, 6);
  });
});
