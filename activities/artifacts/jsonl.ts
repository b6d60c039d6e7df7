import type { ObjectStore } from '../../store';

/** Our own artifacts are JSONL written by us; user files go through datasets/, which reports file and line. */
export const toJsonl = (rows: readonly unknown[]): string =>
  rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');

/** The rows of JSONL lines; blank lines are skipped. */
const parseLines = <T>(lines: string[]) =>
  lines.filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as T);

export const fromJsonl = <T>(text: string): T[] => parseLines<T>(text.split('\n'));

/**
 * The rows of one of our JSONL objects, read from the store a chunk at a time, so a large file is never held whole as
 * one string: one await per chunk rather than per line, for readers that walk a million rows (or two files side by
 * side). Same rows as `fromJsonl` over the object's text (JSON.stringify never writes a raw line break).
 */
export async function* streamJsonlChunks<T>(store: ObjectStore, key: string): AsyncGenerator<T[]> {
  const input = await store.getStream(key);
  const decoder = new TextDecoder('utf-8');
  let pending = '';
  try {
    for await (const chunk of input) {
      const lines = (pending + decoder.decode(chunk as Buffer, { stream: true })).split('\n');
      pending = lines.pop()!;
      const rows = parseLines<T>(lines);
      if (rows.length) yield rows;
    }
    const rows = parseLines<T>([pending + decoder.decode()]);
    if (rows.length) yield rows;
  } finally {
    input.destroy();
  }
}

/** The rows of `streamJsonlChunks` one at a time. */
export async function* streamJsonl<T>(store: ObjectStore, key: string): AsyncGenerator<T> {
  for await (const rows of streamJsonlChunks<T>(store, key)) yield* rows;
}

/** The rows of `streamJsonlChunks` one at a time, without an await per row: for walking a file beside another. */
export class JsonlCursor<T> {
  private rows: T[] = [];
  private at = 0;
  private ended = false;
  private readonly source: AsyncGenerator<T[]>;

  constructor(store: ObjectStore, key: string) {
    this.source = streamJsonlChunks<T>(store, key);
  }

  /** The next row, left in place; undefined at the end. */
  async peek(): Promise<T | undefined> {
    while (this.at === this.rows.length) {
      if (this.ended) return undefined;
      const next = await this.source.next();
      if (next.done) this.ended = true;
      else [this.rows, this.at] = [next.value, 0];
    }
    return this.rows[this.at];
  }

  /** The next row, taken; undefined at the end. */
  async next(): Promise<T | undefined> {
    const row = await this.peek();
    if (row !== undefined) this.at += 1;
    return row;
  }

  /** Releases the file handle or the S3 connection, also when the reader stops early. */
  async close(): Promise<void> {
    await this.source.return(undefined);
  }
}

/** All rows of `streamJsonl`, as an array. */
export async function readJsonl<T>(store: ObjectStore, key: string): Promise<T[]> {
  const rows: T[] = [];
  for await (const row of streamJsonl<T>(store, key)) rows.push(row);
  return rows;
}
