import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
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
   * Real paths of the local folders a run may name (dataset, benchmarks, model directories, a local store):
   * PIFT_FILE_ROOTS, else the project's data folder and the working directory, plus the worker's default store.
   */
  fileRoots: string[];
}

/** The project root, found by its package.json: this file runs from the sources under ts-node and from lib/ built. */
function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return from;
  }
}
const repoRoot = findRepoRoot(__dirname);

export function depsFromEnv(env: NodeJS.ProcessEnv = process.env): ActivityDeps {
  const venvPython = join(repoRoot, '.venv', 'bin', 'python');
  return {
    env,
    workDir: env.PIFT_WORKDIR ?? join(tmpdir(), 'pift-work'),
    python: env.PIFT_PYTHON ?? (existsSync(venvPython) ? venvPython : 'python3'),
    fileRoots: fileRootsFromEnv(env, [join(repoRoot, 'data'), process.cwd()]),
  };
}
