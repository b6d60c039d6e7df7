import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { PipelineInput } from '../common/settings/schema';
import { badSetting, InvalidDataError } from '../common/failures';
import { schemeOf } from '../store/file-roots';
import { jsonProblem } from '../activities/datasets/json-records';

export interface InputOptions {
  input?: string;
  dataset?: string;
  runId?: string;
  store?: string;
}

/** A local path becomes an absolute file URI, since the workers may run in another directory. */
export const asUri = (pathOrUri: string) => (schemeOf(pathOrUri) ? pathOrUri : pathToFileURL(resolve(pathOrUri)).href);

/** Reads an input file; a file that is not one JSON object is named, its content never echoed. */
export function readInputFile(file: string): Partial<PipelineInput> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Partial<PipelineInput>;
  } catch (err) {
    // Only a failed read carries an error code; V8's parse error quotes the text, so only its fixed phrase is kept.
    const code = (err as NodeJS.ErrnoException).code;
    const { what, offset } = jsonProblem(err);
    const why = code
      ? `cannot read it (${code})`
      : `not valid JSON (${what}${offset === undefined ? '' : ` at position ${offset}`})`;
    throw new InvalidDataError(`--input ${file}: ${why}`, { file });
  }
}

/** The workflow input from an --input file and the options that override it, with local paths made URIs. */
export function buildInput(opts: InputOptions): PipelineInput {
  const fromFile = opts.input ? readInputFile(opts.input) : {};
  const dataset = opts.dataset ?? fromFile.dataset;
  const store = opts.store || fromFile.store;
  if (!dataset) throw badSetting('input.dataset', 'give --dataset or an --input file with a "dataset" field');
  const benchmarks = Array.isArray(fromFile.evaluation?.benchmarks)
    ? fromFile.evaluation.benchmarks.map((b) => (typeof b?.uri === 'string' ? { ...b, uri: asUri(b.uri) } : b))
    : undefined;
  return {
    ...fromFile,
    ...(benchmarks ? { evaluation: { ...fromFile.evaluation, benchmarks } } : {}),
    dataset: typeof dataset === 'string' ? asUri(dataset) : dataset,
    ...(opts.runId ? { runId: opts.runId } : {}),
    ...(typeof store === 'string' && { store: asUri(store) }),
  };
}
