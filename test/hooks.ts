import { DefaultLogger, Runtime } from '@temporalio/worker';

// Runtime is a process singleton: quiet the SDK's own logs before any test creates a connection or a worker.
Runtime.install({ logger: new DefaultLogger('ERROR') });

// Root hooks shared by every mocha test file: servers started lazily by helpers are stopped once, at the very end.
const teardowns: Array<() => Promise<void>> = [];

export function onGlobalTeardown(fn: () => Promise<void>): void {
  teardowns.push(fn);
}

export const mochaHooks = {
  async afterAll(): Promise<void> {
    for (const fn of teardowns.reverse()) {
      await fn().catch((err) => console.error('teardown failed:', err));
    }
  },
};
