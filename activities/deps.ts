import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** What activities take from the worker process (never from workflow input): paths, endpoints, secrets. */
export interface ActivityDeps {
  /** The worker's environment: LLM endpoint and key, S3 endpoint and credentials. */
  env: NodeJS.ProcessEnv;
  /** Local scratch space for downloads, checkpoints and trainer configs. */
  workDir: string;
  python: string;
  trainerDir: string;
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
    trainerDir: env.PIFT_TRAINER_DIR ?? join(repoRoot, 'trainer'),
  };
}
