import { allowedLocation, openObject, openStore } from '../../store';
import { benchmarkPrompts, type BenchmarkPrompt } from '../datasets/benchmark-prompts';
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
  for (const bench of input.benchmarks.entries()) {
    // The prompts are small and kept.
    const prompts: BenchmarkPrompt[] = [];
    for await (const prompt of benchmarkPrompts(deps, bench, input.maxRowBytes)) prompts.push(prompt);
    sources.push({ name: bench[1].name, prompts });
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
  const texts = sources.map((s) => toJsonl(s.prompts));
  const inputsHash = hashInputs(sources.map((s, i) => ({ name: s.name, sha: sha256(texts[i]) })));
  return runStep(store, { runId: input.runId, step: 'benchmarks', key: keys.manifest, inputsHash }, async (out) => {
    const result: PreparedBenchmark[] = [];
    for (const [i, { name, prompts }] of sources.entries()) {
      await out.put(keys.prompts(name), texts[i]);
      const withReferences = prompts.filter((p) => p.reference !== undefined).length;
      result.push({ name, uri: store.uriFor(keys.prompts(name)), prompts: prompts.length, withReferences });
    }
    return result;
  });
}
