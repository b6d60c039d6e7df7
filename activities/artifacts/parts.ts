import { sha256 } from './hashing';
import { fromJsonl, toJsonl } from './jsonl';
import type { OutputEntry } from './manifest';
import type { StepOutputs } from './step';

/**
 * Partial commits inside a step (scored rows by the hundred, judgments per (model, benchmark), answers per benchmark):
 * each part is written whole under a key that carries the step's inputs hash (see run-keys.ts), so a retried attempt
 * reuses the parts that were finished and redoes only the rest.
 */

/**
 * The rows of a JSONL part: read back when it is complete (`rows` of them, when given), computed and written when not.
 * `output: true` lists the part among the step's outputs (an artifact kept for audit); otherwise it is scratch that
 * only speeds up a retry.
 */
export async function jsonlPart<T>(
  out: StepOutputs,
  key: string,
  options: { rows?: number; output: boolean },
  compute: () => Promise<T[]>,
): Promise<T[]> {
  const { store } = out;
  if (await store.exists(key)) {
    const text = await store.getText(key);
    const rows = fromJsonl<T>(text);
    if (options.rows === undefined || rows.length === options.rows) {
      if (options.output) out.record({ key, bytes: Buffer.byteLength(text), sha256: sha256(text) });
      return rows;
    }
  }
  const rows = await compute();
  const text = toJsonl(rows);
  if (options.output) await out.put(key, text);
  else await store.put(key, text);
  return rows;
}

/**
 * A file output committed on its own: `produce` makes it locally and returns its path; once it is uploaded, a marker
 * holding its entry is written, so a retry neither makes it again nor downloads it to describe it.
 */
export async function filePart(
  out: StepOutputs,
  key: string,
  markerKey: string,
  produce: () => Promise<string>,
): Promise<OutputEntry> {
  const { store } = out;
  if (await store.exists(markerKey)) {
    return out.record(JSON.parse(await store.getText(markerKey)) as OutputEntry);
  }
  const entry = await out.putFile(key, await produce());
  await store.put(markerKey, JSON.stringify(entry));
  return entry;
}
