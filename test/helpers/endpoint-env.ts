import { rmSync } from 'node:fs';
import { after, afterEach } from 'mocha';
import { join } from 'node:path';
import type { FakeOpenAI } from './fake-openai';

/** A worker's environment for activity tests against the fake endpoint, with every file the step touches in `dir`. */
export function fakeEndpointEnv(llm: FakeOpenAI, apiKey: string, dir: string): NodeJS.ProcessEnv {
  return {
    PIFT_OPENAI_BASE_URL: llm.baseURL,
    OPENAI_API_KEY: apiKey,
    PIFT_FILE_ROOTS: dir,
    PIFT_WORKDIR: join(dir, 'work'),
    // Short, so that a test whose endpoint stays down fails in a minute instead of waiting out the default hours.
    PIFT_OUTAGE_TOLERANCE: '1m',
  };
}

/** Mocha hooks: each test starts from the default handler; at the end the endpoint stops and `dir` is removed. */
export function cleanUpFakeEndpoint(current: () => { llm: FakeOpenAI; dir: string }): void {
  afterEach(() => current().llm.reset());
  after(async () => {
    const { llm, dir } = current();
    await llm.stop();
    rmSync(dir, { recursive: true, force: true });
  });
}

/** Looks at a round's batches until they are finished, as the waitForBatch activity's retry policy does. */
export async function untilFinished(look: () => Promise<void>): Promise<void> {
  for (;;) {
    try {
      return await look();
    } catch (err) {
      if ((err as { type?: string }).type !== 'BatchRunning') throw err;
    }
  }
}
