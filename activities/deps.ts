import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileRootsFromEnv } from '../store/file-roots';

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
  /**
   * Real paths of the local folders a run may name (dataset, benchmarks, model directories, a local store):
   * PIFT_FILE_ROOTS, else the project's data folder and the working directory, plus the worker's own PIFT_STORE.
   */
  fileRoots: string[];
}

const repoRoot = resolve(__dirname, '..');

export function depsFromEnv(env: NodeJS.ProcessEnv = process.env): ActivityDeps {
  const venvPython = join(repoRoot, '.venv', 'bin', 'python');
  return {
    env,
    workDir: env.PIFT_WORKDIR ?? join(tmpdir(), 'pift-work'),
    python: env.PIFT_PYTHON ?? (existsSync(venvPython) ? venvPython : 'python3'),
    progressSignalEveryMs: Number(env.PIFT_PROGRESS_SIGNAL_MS ?? 60_000),
    fileRoots: fileRootsFromEnv(env, [join(repoRoot, 'data'), process.cwd()]),
  };
}
