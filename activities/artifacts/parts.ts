import { streamJsonl } from './jsonl';
import type { OutputEntry } from './manifest';
import type { StepOutputs } from './step';

/**
 * Partial commits inside a step (scored rows by the hundred, judgments per (model, benchmark), answers per benchmark):
 * each part is written whole under a key that carries the step's inputs hash (see run-keys.ts), so a retried attempt
 * reuses the parts that were finished and redoes only the rest.
 */

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

/** The part size of the first version, kept for every step of up to 100,000 rows (and for runs it started). */
const FIRST_PART_ROWS = 100;
/** Above this many parts a step's part size grows instead: objects in the store stay few however large the data. */
const MAX_PARTS = 1000;

/**
 * Rows per part for a step over `total` rows: 100 up to 100,000 rows, then `total / 1000` (1,000,000 rows: 1,000
 * parts of 1,000, not 10,000 parts of 100). A run whose first part was already written with 100 rows keeps that
 * size, so a run started by the first version resumes from its parts instead of asking for those rows again.
 */
export async function rowsPerPart(out: StepOutputs, firstPartKey: string, total: number): Promise<number> {
  const grown = Math.max(FIRST_PART_ROWS, Math.ceil(total / MAX_PARTS));
  if (grown === FIRST_PART_ROWS || !(await out.store.exists(firstPartKey))) return grown;
  let rows = 0;
  for await (const _ of streamJsonl(out.store, firstPartKey)) rows++;
  return rows === FIRST_PART_ROWS ? FIRST_PART_ROWS : grown;
}
