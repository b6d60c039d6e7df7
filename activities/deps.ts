import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** What activities take from the worker process (never from workflow input): paths, endpoints, secrets. */
export interface ActivityDeps {
  /** The worker's environment: LLM endpoint and key, S3 endpoint and credentials. */
  env: NodeJS.ProcessEnv;
  /** Local scratch space for downloads, checkpoints and trainer configs. */
  workDir: string;
  /** Runs the trainer as `python -m pift.…`: the trainer package must be installed in its environment. */
  python: string;
  /**
   * Trainer progress is signalled to the workflow at most this often, and at every checkpoint: each signal adds
   * history events, so once a minute keeps a multi-day training far below the history limit.
   */
  progressSignalEveryMs: number;
}

const repoRoot = resolve(__dirname, '..');

export function depsFromEnv(env: NodeJS.ProcessEnv = process.env): ActivityDeps {
  const venvPython = join(repoRoot, '.venv', 'bin', 'python');
  return {
    env,
    workDir: env.PIFT_WORKDIR ?? join(tmpdir(), 'pift-work'),
    python: env.PIFT_PYTHON ?? (existsSync(venvPython) ? venvPython : 'python3'),
    progressSignalEveryMs: Number(env.PIFT_PROGRESS_SIGNAL_MS ?? 60_000),
  };
}
