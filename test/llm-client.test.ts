import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { after, before, describe, it } from 'mocha';
import { InvalidDataError, WorkerMisconfiguredError } from '../common/failures';
import { complete, endpointFor, type LlmEndpoint } from '../activities/llm/llm-client';
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
});
