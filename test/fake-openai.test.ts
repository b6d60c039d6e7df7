import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'mocha';
import OpenAI from 'openai';
import { type FakeOpenAI, type Reply, startFakeOpenAI } from './helpers/fake-openai';

/** Proves the fake speaks the protocol of the real `openai` client, retries and failures included. */
describe('fake OpenAI server with the real openai client', () => {
  let fake: FakeOpenAI;
  const messages = [
    { role: 'system' as const, content: 'You are a judge.' },
    { role: 'user' as const, content: 'Rate this answer from 1 to 10.' },
  ];

  before(async () => {
    fake = await startFakeOpenAI({ apiKey: 'sk-test-key' });
  });
  afterEach(() => fake.reset());
  after(() => fake.stop());

  const client = (options: { maxRetries?: number; timeout?: number; apiKey?: string } = {}) =>
    new OpenAI({ baseURL: fake.baseURL, apiKey: options.apiKey ?? fake.apiKey, maxRetries: 0, ...options });

  /** Replies in order, then the last one forever. */
  const inOrder = (...replies: Reply[]) => {
    let i = 0;
    fake.handle(() => replies[Math.min(i++, replies.length - 1)]);
  };

  it('answers a chat completion and records what was asked', async () => {
    fake.handle((req) => ({ content: `score for ${req.messages.length} messages: 7` }));
    const completion = await client().chat.completions.create({
      model: 'gpt-judge',
      messages,
      temperature: 0,
      top_p: 1,
      max_tokens: 16,
    });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.model, 'gpt-judge');
    assert.equal(completion.choices[0].message.role, 'assistant');
    assert.equal(completion.choices[0].message.content, 'score for 2 messages: 7');
    assert.equal(completion.choices[0].finish_reason, 'stop');
    assert.ok(completion.usage && completion.usage.total_tokens > 0);

    assert.equal(fake.requests.length, 1);
    const [request] = fake.requests;
    assert.equal(request.path, '/v1/chat/completions');
    assert.deepEqual(request.chat?.messages, messages);
    assert.equal(request.chat?.temperature, 0);
    assert.equal(request.chat?.top_p, 1);
    assert.equal(request.chat?.max_tokens, 16);
  });

  it('returns n choices', async () => {
    const completion = await client().chat.completions.create({ model: 'm', messages, n: 3 });
    assert.deepEqual(
      completion.choices.map((c) => [c.index, c.message.content]),
      [
        [0, 'ok'],
        [1, 'ok'],
        [2, 'ok'],
      ],
    );
  });

  it('also serves /chat/completions directly under the base URL', async () => {
    const res = await fetch(`${fake.baseURL.replace(/\/v1$/, '')}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fake.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { choices: { message: { content: string } }[] };
    assert.equal(body.choices[0].message.content, 'ok');
  });

  it('rejects a wrong API key with 401', async () => {
    await assert.rejects(
      client({ apiKey: 'sk-wrong' }).chat.completions.create({ model: 'm', messages }),
      (err: unknown) => err instanceof OpenAI.AuthenticationError && err.status === 401,
    );
    assert.equal(fake.requests[0].authorized, false);
  });

  it('lets the client retry through a 429 with retry-after', async () => {
    inOrder({ status: 429, retryAfterSeconds: 0 }, { content: 'after rate limit' });
    const completion = await client({ maxRetries: 2 }).chat.completions.create({ model: 'm', messages });
    assert.equal(completion.choices[0].message.content, 'after rate limit');
    assert.equal(fake.requests.length, 2);
  });

  it('lets the client retry through a 503', async () => {
    inOrder({ status: 503, retryAfterMs: 10 }, { content: 'after outage' });
    const completion = await client({ maxRetries: 2 }).chat.completions.create({ model: 'm', messages });
    assert.equal(completion.choices[0].message.content, 'after outage');
    assert.equal(fake.requests.length, 2);
  });

  it('gives up with the status once retries are spent', async () => {
    fake.handle(() => ({ status: 500, retryAfterMs: 1 }));
    await assert.rejects(
      client({ maxRetries: 2 }).chat.completions.create({ model: 'm', messages }),
      (err: unknown) => err instanceof OpenAI.InternalServerError && err.status === 500,
    );
    assert.equal(fake.requests.length, 3);
  });

  it('turns a hang-up into a connection error, retried like any other', async () => {
    fake.handle(() => ({ hangUp: true }));
    await assert.rejects(
      client().chat.completions.create({ model: 'm', messages }),
      (err: unknown) => err instanceof OpenAI.APIConnectionError,
    );
    inOrder({ hangUp: true }, { content: 'reconnected' });
    const completion = await client({ maxRetries: 1 }).chat.completions.create({ model: 'm', messages });
    assert.equal(completion.choices[0].message.content, 'reconnected');
  });

  it('makes an invalid JSON body an error', async () => {
    fake.handle(() => ({ garbage: 'not json' }));
    await assert.rejects(client().chat.completions.create({ model: 'm', messages }), SyntaxError);
  });

  it('delays replies, so a short client timeout fires', async () => {
    fake.handle(() => ({ delayMs: 2_000, then: { content: 'too late' } }));
    await assert.rejects(
      client({ timeout: 100 }).chat.completions.create({ model: 'm', messages }),
      (err: unknown) => err instanceof OpenAI.APIConnectionTimeoutError,
    );
    fake.handle(() => ({ delayMs: 50, then: { content: 'in time' } }));
    const completion = await client({ timeout: 5_000 }).chat.completions.create({ model: 'm', messages });
    assert.equal(completion.choices[0].message.content, 'in time');
  });
});
