import type { BenchmarkRef } from '../../common/settings/schema';
import type { ActivityDeps } from '../deps';
import { benchmarkPromptBuilder, type BenchmarkPrompt } from './parse';
import { readDatasetRows } from './read-dataset';

/**
 * The prompts of the input's `i`th benchmark, read record by record in any file type a dataset may have: what
 * `pift validate` checks is what the run's benchmark step keeps. Errors name the file, the record and the field.
 */
export async function* benchmarkPrompts(
  deps: Pick<ActivityDeps, 'env' | 'fileRoots' | 'workDir'>,
  [i, bench]: [number, BenchmarkRef],
  maxRowBytes: number | undefined,
): AsyncGenerator<BenchmarkPrompt> {
  const file = readDatasetRows(deps, bench.uri, { field: `input.evaluation.benchmarks[${i}].uri`, maxRowBytes });
  const build = benchmarkPromptBuilder(file.source, bench.name);
  for await (const rec of file.records()) yield build(rec);
}
