/**
 * The duplicate-id check of a dataset read as a stream, at 8 bytes a row. An IdTable keeps every id's bytes and a hash
 * table that doubles as it grows (22 MB at a million short ids); here only a 52-bit hash of each id is kept, in
 * fixed-size chunks each sorted when it fills, so nothing is copied as the rows add up. After the last row the sorted
 * chunks are merged to find the hashes seen twice. An equal hash is a repeated id or, rarely, two ids whose hashes
 * collide: only then are the records read again for the exact ids (firstRepeated), so the check stays exact.
 */
import type { SourceRecord } from './json-records';

/** A hash of an id, an integer below 2^53 so that a double holds it exactly. */
export type IdHash = (id: string) => number;

/** Hashes per chunk: 512 KB each, few enough chunks that merging them is cheap at tens of millions of rows. */
export const ID_CHUNK = 65_536;

/** Murmur3's finaliser: spreads the last bytes' bits over the whole word. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Two 32-bit hashes over the id's UTF-16 code units (no UTF-8 encoding), 32 + 20 bits of them kept: at a million ids
 * two share a hash about once in ten thousand datasets, which costs a second read, never a wrong answer.
 */
export function idHash(id: string): number {
  let a = 0x811c9dc5;
  let b = 0x9e3779b9 ^ id.length;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return mix(a) * 0x100000 + (mix(b) >>> 12);
}

/** The hashes of the ids read so far, in sorted chunks. */
export class IdHashes {
  private readonly chunks: Float64Array[] = [];
  private filled = 0;

  constructor(
    readonly hash: IdHash = idHash,
    private readonly chunkSize = ID_CHUNK,
  ) {}

  add(id: string): void {
    let chunk = this.chunks.at(-1);
    if (chunk === undefined || this.filled === this.chunkSize) {
      chunk?.sort();
      chunk = new Float64Array(this.chunkSize);
      this.chunks.push(chunk);
      this.filled = 0;
    }
    chunk[this.filled++] = this.hash(id);
  }

  /** Every hash added more than once, ascending, each once; the chunks are let go. */
  repeated(): Float64Array {
    const last = this.chunks.at(-1);
    if (last !== undefined) this.chunks[this.chunks.length - 1] = last.subarray(0, this.filled).sort();
    const runs = this.chunks.splice(0);
    this.filled = 0;
    return repeatedValues(runs);
  }
}

/** The values found more than once across sorted runs, ascending, each once: a k-way merge through a binary heap. */
export function repeatedValues(runs: Float64Array[]): Float64Array {
  const at = new Uint32Array(runs.length);
  const heap = runs.map((_, r) => r).filter((r) => runs[r].length > 0);
  const head = (r: number) => runs[r][at[r]];
  const siftDown = (i: number) => {
    const r = heap[i];
    const value = head(r);
    for (;;) {
      let child = 2 * i + 1;
      if (child >= heap.length) break;
      if (child + 1 < heap.length && head(heap[child + 1]) < head(heap[child])) child += 1;
      if (head(heap[child]) >= value) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = r;
  };
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) siftDown(i);
  const found: number[] = [];
  let previous = -1;
  while (heap.length > 0) {
    const r = heap[0];
    const value = head(r);
    if (value === previous && found.at(-1) !== value) found.push(value);
    previous = value;
    at[r] += 1;
    if (at[r] === runs[r].length) {
      const moved = heap.pop()!;
      if (heap.length === 0) break;
      heap[0] = moved;
    }
    siftDown(0);
  }
  return Float64Array.from(found);
}

function sortedHas(sorted: Float64Array, value: number): boolean {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] === value) return true;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/**
 * The first record (in file order) whose id an earlier record already used, with the line of that earlier record,
 * among the records whose id hashes to one of `repeated`; undefined when those were only collisions. The same answer
 * as checking each row as it came: a later record is never read.
 */
export async function firstRepeated(
  records: AsyncIterable<SourceRecord>,
  repeated: Float64Array,
  idOf: (rec: SourceRecord) => string,
  hash: IdHash = idHash,
): Promise<{ rec: SourceRecord; first: number } | undefined> {
  // Only ids under a repeated hash are kept: the duplicates and their rare colliding neighbours.
  const firstLines = new Map<string, number>();
  for await (const rec of records) {
    const id = idOf(rec);
    if (!sortedHas(repeated, hash(id))) continue;
    const first = firstLines.get(id);
    if (first !== undefined) return { rec, first };
    firstLines.set(id, rec.line);
  }
  return undefined;
}
