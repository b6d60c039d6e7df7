import { createInterface } from 'node:readline';
import type { ObjectStore } from '../../store';

/** Our own artifacts are JSONL written by us; user files go through datasets/, which reports file and line. */
export const toJsonl = (rows: readonly unknown[]): string =>
  rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');

const isBlank = (line: string) => line.trim() === '';

export function fromJsonl<T>(text: string): T[] {
  return text
    .split('\n')
    .filter((line) => !isBlank(line))
    .map((line) => JSON.parse(line) as T);
}

/**
 * The rows of one of our JSONL objects, read line by line from the store, so a large file is never held whole as one
 * string. Same rows as `fromJsonl` over the object's text (JSON.stringify never writes a raw line break).
 */
export async function* streamJsonl<T>(store: ObjectStore, key: string): AsyncGenerator<T> {
  const input = await store.getStream(key);
  const lines = createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const line of lines) if (!isBlank(line)) yield JSON.parse(line) as T;
  } finally {
    // Also when the reader stops early: the file handle or the S3 connection is released.
    lines.close();
    input.destroy();
  }
}

/** All rows of `streamJsonl`, as an array. */
export async function readJsonl<T>(store: ObjectStore, key: string): Promise<T[]> {
  const rows: T[] = [];
  for await (const row of streamJsonl<T>(store, key)) rows.push(row);
  return rows;
}
