import { basename } from 'node:path';
import { NotFoundError, openObject, openStore } from '../../store';
import { parseBenchmark, type BenchmarkPrompt } from '../datasets/parse';
import type { ActivityDeps } from '../deps';
import { InvalidDataError } from '../../common/failures';
import { hashInputs, sha256 } from '../artifacts/hashing';
import { fromJsonl, toJsonl } from '../artifacts/jsonl';
import { commitManifest, finishedStep, type OutputEntry } from '../artifacts/manifest';
import type { PrepareBenchmarksInput, PreparedBenchmark } from '../types';

/** Reads every benchmark prompt file once, in whichever public format it comes, into one normalised JSONL each. */
export async function prepareBenchmarks(
  deps: ActivityDeps,
  input: PrepareBenchmarksInput,
): Promise<PreparedBenchmark[]> {
  const store = openStore(input.store, deps.env);
  const base = `${input.runId}/benchmarks`;
  const sources: Array<{ name: string; prompts: BenchmarkPrompt[] }> = [];
  for (const [i, bench] of input.benchmarks.entries()) {
    const { store: s, key } = openObject(bench.uri, deps.env, { setting: `input.evaluation.benchmarks[${i}].uri` });
    let text: string;
    try {
      text = await s.getText(key);
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new InvalidDataError(`input.evaluation.benchmarks[${i}].uri: ${bench.uri} does not exist`, {
          field: `input.evaluation.benchmarks[${i}].uri`,
        });
      }
      throw err;
    }
    sources.push({ name: bench.name, prompts: parseBenchmark(text, basename(key), bench.name) });
  }
  if (input.heldout) {
    const { store: s, key } = openObject(input.heldout.uri, deps.env);
    const rows = fromJsonl<{ id: string; instruction: string; input: string; output: string }>(await s.getText(key));
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
  const done = await finishedStep<PreparedBenchmark[]>(store, `${base}/manifest.json`, inputsHash);
  if (done) return done;

  const outputs: OutputEntry[] = [];
  const result: PreparedBenchmark[] = [];
  for (const [i, { name, text }] of texts.entries()) {
    const key = `${base}/${name}.jsonl`;
    await store.put(key, text);
    outputs.push({ key, bytes: Buffer.byteLength(text), sha256: sha256(text) });
    const prompts = sources[i].prompts;
    result.push({
      name,
      uri: store.uriFor(key),
      prompts: prompts.length,
      withReferences: prompts.filter((p) => p.reference !== undefined).length,
    });
  }
  await commitManifest(store, `${base}/manifest.json`, {
    runId: input.runId,
    step: 'benchmarks',
    inputsHash,
    outputs,
    result,
  });
  return result;
}
