import { allowedLocation, openObject, openStore } from '../../store';
import { benchmarkPromptBuilder, type BenchmarkPrompt } from '../datasets/parse';
import { readDatasetRows } from '../datasets/read-dataset';
import type { ActivityDeps } from '../deps';
import { InvalidDataError } from '../../common/failures';
import { hashInputs, sha256 } from '../artifacts/hashing';
import { readJsonl, toJsonl } from '../artifacts/jsonl';
import { benchmarkKeys } from '../artifacts/run-keys';
import { runStep } from '../artifacts/step';
import type { PrepareBenchmarksInput, PreparedBenchmark } from '../types';

/** Reads every benchmark prompt file once, in whichever public format it comes, into one normalised JSONL each. */
export async function prepareBenchmarks(
  deps: ActivityDeps,
  input: PrepareBenchmarksInput,
): Promise<PreparedBenchmark[]> {
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const keys = benchmarkKeys(input.runId);
  const sources: Array<{ name: string; prompts: BenchmarkPrompt[] }> = [];
  for (const [i, bench] of input.benchmarks.entries()) {
    const field = `input.evaluation.benchmarks[${i}].uri`;
    // Read record by record, in any file type a dataset may have; the prompts are small and kept.
    const file = readDatasetRows(deps, bench.uri, { field, maxRowBytes: input.maxRowBytes });
    const build = benchmarkPromptBuilder(file.source, bench.name);
    const prompts: BenchmarkPrompt[] = [];
    for await (const rec of file.records()) prompts.push(build(rec));
    sources.push({ name: bench.name, prompts });
  }
  if (input.heldout) {
    const { store: s, key } = openObject(input.heldout.uri, deps.env);
    const rows = await readJsonl<{ id: string; instruction: string; input: string; output: string }>(s, key);
    sources.push({
      name: 'heldout',
      prompts: rows.map((r) => ({ id: r.id, instruction: r.instruction, input: r.input, reference: r.output })),
    });
  }
  if (sources.length === 0) {
    throw new InvalidDataError(
      'no benchmark to evaluate on: give input.evaluation.benchmarks or a heldoutFraction > 0',
      { field: 'input.evaluation' },
    );
  }
  const texts = sources.map((s) => ({ name: s.name, text: toJsonl(s.prompts) }));
  const inputsHash = hashInputs(texts.map((t) => ({ name: t.name, sha: sha256(t.text) })));
  return runStep(store, { runId: input.runId, step: 'benchmarks', key: keys.manifest, inputsHash }, async (out) => {
    const result: PreparedBenchmark[] = [];
    for (const [i, { name, text }] of texts.entries()) {
      const key = keys.prompts(name);
      await out.put(key, text);
      const prompts = sources[i].prompts;
      result.push({
        name,
        uri: store.uriFor(key),
        prompts: prompts.length,
        withReferences: prompts.filter((p) => p.reference !== undefined).length,
      });
    }
    return result;
  });
}
