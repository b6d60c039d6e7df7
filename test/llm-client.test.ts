import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { Context } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { after, before, describe, it } from 'mocha';
import { InvalidDataError, WorkerMisconfiguredError } from '../common/failures';
import { complete, endpointFor, scorerModel, type LlmEndpoint } from '../activities/llm/llm-client';
import { startFakeOpenAI, type FakeOpenAI } from './helpers/fake-openai';

describe('LLM requests', () => {
  let llm: FakeOpenAI;
  let endpoint: LlmEndpoint;
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  const ask = () =>
    env.run(
      complete,
      endpoint,
      { model: 'gpt-4-0613', messages: [{ role: 'user' as const, content: 'hi' }] },
      'input.scorer.model',
    );

  before(async () => {
    llm = await startFakeOpenAI({ apiKey: 'sk-test' });
    endpoint = endpointFor(
      'auto',
      'input.scorer.kind',
      { PIFT_OPENAI_BASE_URL: llm.baseURL, OPENAI_API_KEY: 'sk-test' },
      { maxRetries: 3, timeoutSeconds: 5 },
    )!;
  });
  after(() => llm.stop());

  it('rides out 429 and 5xx with the client retries', async () => {
    let n = 0;
    llm.handle(() => (++n === 1 ? { status: 429, retryAfterMs: 10 } : n === 2 ? { status: 503 } : { content: '3.5' }));
    assert.deepEqual(await ask(), { content: '3.5' });
  });

  it('returns a request the endpoint rejects, for the caller to record against the row', async () => {
    llm.handle(() => ({ status: 400, message: 'content filter' }));
    const reply = (await ask()) as { rejected: string };
    assert.match(reply.rejected, /HTTP 400/);
  });

  it('fails at once on a refused key (the worker) or an unknown model (the input), naming the setting', async () => {
    llm.handle(() => ({ status: 401 }));
    await assert.rejects(
      ask(),
      (e) => e instanceof WorkerMisconfiguredError && e.setting === 'OPENAI_API_KEY' && /API key/.test(e.message),
    );
    llm.handle(() => ({ status: 404 }));
    await assert.rejects(
      ask(),
      (e) => e instanceof InvalidDataError && /input\.scorer\.model.*gpt-4-0613/.test(e.message),
    );
  });

  it('requires an endpoint only when one is asked for', () => {
    assert.equal(endpointFor('auto', 'input.scorer.kind', {}, { maxRetries: 0, timeoutSeconds: 1 }), undefined);
    assert.throws(
      () => endpointFor('openai', 'input.scorer.kind', {}, { maxRetries: 0, timeoutSeconds: 1 }),
      /input\.scorer\.kind is "openai"/,
    );
  });
  describe('outages and replies retrying cannot fix', () => {
    // No client retries: every fault reaches the activity's own waiting at once.
    const bare = (baseURL: string, apiKey = 'sk-test') =>
      endpointFor(
        'auto',
        'input.scorer.kind',
        { PIFT_OPENAI_BASE_URL: baseURL, OPENAI_API_KEY: apiKey, PIFT_OUTAGE_TOLERANCE: '1m' },
        { maxRetries: 0, timeoutSeconds: 5 },
      )!;
    const askAt = (target: LlmEndpoint, setting = 'input.scorer.model') => {
      const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
      const heartbeats: unknown[] = [];
      mock.on('heartbeat', (d: unknown) => heartbeats.push(d));
      const reply = mock.run(
        complete,
        target,
        { model: 'gpt-4-0613', messages: [{ role: 'user' as const, content: 'hi' }] },
        setting,
      );
      return { reply, heartbeats };
    };

    it('waits out dropped connections, 5xx and 429 after the client retries, in the same attempt, heartbeating', async () => {
      const faults = [{ hangUp: true as const }, { status: 503 }, { status: 429 }];
      let n = 0;
      llm.handle(() => faults[n++] ?? { content: '4.0' });
      const { reply, heartbeats } = askAt(bare(llm.baseURL));
      assert.deepEqual(await reply, { content: '4.0' });
      assert.equal(n, 4);
      assert.match(JSON.stringify(heartbeats.at(-1)), /waitingFor/);
    });

    it("an exhausted quota is the key's account to fix, not an outage", async () => {
      llm.handle(() => ({ status: 429, code: 'insufficient_quota', message: 'You exceeded your current quota' }));
      const started = Date.now();
      await assert.rejects(
        askAt(bare(llm.baseURL)).reply,
        (e) => e instanceof WorkerMisconfiguredError && e.setting === 'OPENAI_API_KEY' && /quota/.test(e.message),
      );
      assert.ok(Date.now() - started < 2_000);
    });

    it("never repeats the key, nor its last characters, from the provider's message", async () => {
      const key = 'sk-proj-Zq8Wx7Kp4242';
      const keyed = await startFakeOpenAI({ apiKey: key });
      try {
        // OpenAI's own wording when it refuses a key quotes the start and the end of the key.
        keyed.handle(() => ({ status: 401, message: 'Incorrect API key provided: sk-proj-****4242.' }));
        await assert.rejects(askAt(bare(keyed.baseURL, key)).reply, (e) => {
          assert.ok(e instanceof WorkerMisconfiguredError);
          assert.ok(!e.message.includes('4242') && !e.message.includes('sk-proj'), e.message);
          return true;
        });
        // A rejected row's reason is stored with the scores: no key there either.
        keyed.handle(() => ({ status: 422, message: `refused for key ${key} (${key.slice(3)})` }));
        const { rejected } = (await askAt(bare(keyed.baseURL, key)).reply) as { rejected: string };
        assert.match(rejected, /HTTP 422/);
        assert.ok(!rejected.includes('4242'), rejected);
      } finally {
        await keyed.stop();
      }
    });

    it('a model left to the worker that the endpoint lacks names the worker variable', async () => {
      const source = scorerModel({ PIFT_SCORER_MODEL: 'gpt-4-0613' }, undefined);
      assert.deepEqual(source, { model: 'gpt-4-0613', setting: 'PIFT_SCORER_MODEL' });
      llm.handle(() => ({ status: 404, code: 'model_not_found', message: 'The model `gpt-4-0613` does not exist' }));
      await assert.rejects(
        askAt(bare(llm.baseURL), source.setting).reply,
        (e) =>
          e instanceof WorkerMisconfiguredError && e.setting === 'PIFT_SCORER_MODEL' && /gpt-4-0613/.test(e.message),
      );
    });

    it('a 404 from a base URL without /v1 says the suffix is likely missing', async () => {
      llm.handle(() => ({ status: 404, message: 'Not Found' }));
      await assert.rejects(
        askAt(bare(llm.baseURL.replace(/\/v1$/, ''))).reply,
        (e) => e instanceof WorkerMisconfiguredError && e.setting === 'PIFT_OPENAI_BASE_URL' && /\/v1/.test(e.message),
      );
    });
  });
});

describe('LLM requests and the activity cancellation signal', () => {
  const request = { model: 'm', messages: [{ role: 'user' as const, content: 'hi' }] };
  /** A fake server and an endpoint on it that makes no client retries of its own. */
  async function withEndpoint(timeoutSeconds: number, fn: (llm: FakeOpenAI, endpoint: LlmEndpoint) => Promise<void>) {
    const llm = await startFakeOpenAI({ apiKey: 'sk-test' });
    try {
      const env = { PIFT_OPENAI_BASE_URL: llm.baseURL, OPENAI_API_KEY: 'sk-test' };
      await fn(llm, endpointFor('auto', 'input.scorer.kind', env, { maxRetries: 0, timeoutSeconds })!);
    } finally {
      await llm.stop();
    }
  }

  it('leave no listener on it, and are still aborted by it', async () => {
    await withEndpoint(5, async (llm, endpoint) => {
      const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
      const counts = (await mock.run(async () => {
        const signal = Context.current().cancellationSignal;
        const seen: number[] = [];
        for (let i = 0; i < 30; i++) {
          await Promise.all([1, 2, 3].map(() => complete(endpoint, request, 'input.scorer.model')));
          seen.push(getEventListeners(signal, 'abort').length);
        }
        return seen;
      })) as number[];
      assert.ok(Math.max(...counts) <= 1, `listeners: ${counts.join(',')}`);

      llm.handle(() => ({ delayMs: 10_000, then: { content: 'late' } }));
      const cancelling = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
      const started = Date.now();
      const pending = cancelling.run(() => complete(endpoint, request, 'input.scorer.model'));
      setTimeout(() => cancelling.cancel(), 200);
      await assert.rejects(pending);
      assert.ok(Date.now() - started < 5_000);
    });
  });

  it('abort a request sent again after a rate limit, which went out on a signal of its own', async () => {
    await withEndpoint(30, async (llm, endpoint) => {
      let sent = 0;
      // The first send is answered 429 (no client retries left: `complete` sends it again), the second hangs.
      llm.handle(() =>
        sent++ === 0 ? { status: 429, retryAfterMs: 10 } : { delayMs: 20_000, then: { content: '3' } },
      );
      const cancelling = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
      const started = Date.now();
      const pending = cancelling.run(() => complete(endpoint, request, 'input.scorer.model'));
      while (sent < 2) await new Promise((resolve) => setTimeout(resolve, 20));
      cancelling.cancel();
      await assert.rejects(pending);
      assert.ok(Date.now() - started < 10_000, `${Date.now() - started} ms`);
    });
  });
});
