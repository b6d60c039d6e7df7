import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { depsFromEnv } from '../../activities/deps';
import { benchmarkPrompts, type BenchmarkPrompt } from '../../activities/datasets/benchmark-prompts';
import { DatasetRows, type ReadDatasetOptions } from '../../activities/datasets/read-dataset';
import type { AlpacaRow } from '../../activities/datasets/rows';

/** Runs `read` on a file named `name` holding `text`, in a folder the reader is allowed, removed afterwards. */
async function withFile<T>(
  text: string,
  name: string,
  read: (deps: ReturnType<typeof depsOf>, path: string) => Promise<T>,
) {
  const dir = mkdtempSync(join(tmpdir(), 'pift-text-'));
  try {
    writeFileSync(join(dir, name), text);
    return await read(depsOf(dir), join(dir, name));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const depsOf = (dir: string) => ({ ...depsFromEnv({ PIFT_FILE_ROOTS: dir }), workDir: dir });

/** The rows a run reads from an Alpaca dataset holding `text` (datasetFormat `alpaca-json` for a `.json` name). */
export function readAlpaca(text: string, name: string, options: ReadDatasetOptions = {}): Promise<AlpacaRow[]> {
  const format = /\.json(\.gz)?$/.test(name) ? 'alpaca-json' : 'alpaca-jsonl';
  return withFile(text, name, async (deps, path) => {
    const rows: AlpacaRow[] = [];
    for await (const row of new DatasetRows(deps, path, { format, ...options })) rows.push(row as AlpacaRow);
    return rows;
  });
}

/** The prompts a run reads from a benchmark file holding `text`, as prepareBenchmarks reads them. */
export function readBenchmark(
  text: string,
  name: string,
  benchmark: string,
  options: ReadDatasetOptions = {},
): Promise<BenchmarkPrompt[]> {
  return withFile(text, name, async (deps, path) => {
    const prompts: BenchmarkPrompt[] = [];
    for await (const p of benchmarkPrompts(deps, [0, { name: benchmark, uri: path }], options.maxRowBytes))
      prompts.push(p);
    return prompts;
  });
}
