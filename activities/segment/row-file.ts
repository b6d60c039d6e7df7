import { closeSync, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/**
 * Our own JSONL artifacts on local disk, read in two ways: front to back, line by line with each line's byte offset,
 * and then line by line at those offsets, so a step can write rows in any order while keeping two numbers per row in
 * memory instead of the rows. JSON.stringify never writes a raw line break, so a line is a row.
 */

/** A line's place in the file: its first byte and its length without the line break (and a `\r` before it). */
export interface LineRef {
  offset: number;
  length: number;
}

const NEWLINE = 0x0a;
const CR = 0x0d;
const CHUNK = 1 << 20;

/** Lets timers (heartbeats) and cancellation run during a long synchronous scan. */
export const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The non-blank lines of a local file in order, read in chunks of 1 MB with synchronous reads: only a chunk and the
 * line that straddles its end are held. The caller yields to the event loop now and then (`yieldToLoop`).
 */
export class LineCursor {
  private readonly fd: number;
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** File offset of `buf[0]`. */
  private bufOffset = 0;
  private eof = false;

  constructor(path: string) {
    this.fd = openSync(path, 'r');
  }

  next(): ({ text: string } & LineRef) | undefined {
    for (;;) {
      const nl = this.buf.indexOf(NEWLINE, this.pos);
      if (nl === -1 && !this.eof) {
        this.fill();
        continue;
      }
      if (nl === -1 && this.pos >= this.buf.length) return undefined;
      const start = this.pos;
      let end = nl === -1 ? this.buf.length : nl;
      this.pos = nl === -1 ? this.buf.length : nl + 1;
      if (end > start && this.buf[end - 1] === CR) end -= 1;
      const text = this.buf.toString('utf8', start, end);
      if (text.trim() !== '') return { text, offset: this.bufOffset + start, length: end - start };
    }
  }

  /** Two buffers take turns (lines leave as strings, copies): reading allocates nothing once they are big enough. */
  private backing = Buffer.alloc(CHUNK);
  private spare = Buffer.alloc(CHUNK);

  private fill(): void {
    const rest = this.buf.subarray(this.pos);
    if (this.spare.length < rest.length * 2) this.spare = Buffer.alloc(rest.length * 2);
    const next = this.spare;
    rest.copy(next);
    const n = readSync(this.fd, next, rest.length, next.length - rest.length, null);
    if (n === 0) this.eof = true;
    this.bufOffset += this.pos;
    this.spare = this.backing;
    this.backing = next;
    this.buf = next.subarray(0, rest.length + n);
    this.pos = 0;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/**
 * Where each line of a local file is, added in file order: its offset, and its length only once two lines are found
 * not back to back (a blank line or a `\r` between them). A line's length is otherwise where the next one starts, so
 * a file as our steps write it (JSON.stringify and a line break per row) costs 4 bytes a line, not 8.
 */
export class LinePlaces {
  private readonly offsets: Uint32Array | Float64Array;
  private lengths?: Uint32Array;
  private lastLength = 0;
  private count = 0;

  constructor(
    fileSize: number,
    private readonly capacity: number,
  ) {
    this.offsets = fileSize < 2 ** 32 ? new Uint32Array(capacity) : new Float64Array(capacity);
  }

  add(ref: LineRef): void {
    const p = this.count++;
    this.offsets[p] = ref.offset;
    if (!this.lengths && p > 0 && ref.offset !== this.offsets[p - 1] + this.lastLength + 1) {
      const lengths = new Uint32Array(this.capacity);
      for (let q = 0; q + 1 < p; q++) lengths[q] = this.offsets[q + 1] - this.offsets[q] - 1;
      lengths[p - 1] = this.lastLength;
      this.lengths = lengths;
    }
    if (this.lengths) this.lengths[p] = ref.length;
    this.lastLength = ref.length;
  }

  offset(p: number): number {
    return this.offsets[p];
  }

  length(p: number): number {
    if (this.lengths) return this.lengths[p];
    return p + 1 < this.count ? this.offsets[p + 1] - this.offsets[p] - 1 : this.lastLength;
  }

  at(p: number): LineRef {
    return { offset: this.offset(p), length: this.length(p) };
  }
}

/** At least the number of lines of a local file: its line breaks, plus one. */
export async function lineCapacity(path: string): Promise<number> {
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.alloc(CHUNK);
    let breaks = 0;
    for (let n = readSync(fd, chunk, 0, CHUNK, null), k = 0; n > 0; n = readSync(fd, chunk, 0, CHUNK, null)) {
      for (let i = chunk.indexOf(NEWLINE); i !== -1 && i < n; i = chunk.indexOf(NEWLINE, i + 1)) breaks++;
      if ((++k & 0x3f) === 0) await yieldToLoop();
    }
    return breaks + 1;
  } finally {
    closeSync(fd);
  }
}

/** Reads lines back by their `LineRef`; sync reads from the page cache cost far less than a promise per row. */
export class LineReader {
  private readonly fd: number;
  private buf = Buffer.alloc(64 * 1024);

  constructor(path: string) {
    this.fd = openSync(path, 'r');
  }

  /** The line's bytes; valid until the next call. */
  bytes(ref: LineRef): Buffer {
    if (ref.length > this.buf.length) this.buf = Buffer.alloc(ref.length);
    const n = readSync(this.fd, this.buf, 0, ref.length, ref.offset);
    if (n !== ref.length) throw new Error(`short read at byte ${ref.offset}: ${n} of ${ref.length}`);
    return this.buf.subarray(0, n);
  }

  text(ref: LineRef): string {
    return this.bytes(ref).toString('utf8');
  }

  /** Reads `length` bytes at `offset` into `into` (at 0). */
  readInto(into: Buffer, offset: number, length: number): void {
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, into, done, length - done, offset + done);
      if (n === 0) throw new Error(`short read at byte ${offset + done}`);
      done += n;
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Rows per batch of `copyLines`, and the most bytes a batch holds. */
const BATCH_ROWS = 1 << 16;
const BATCH_BYTES = 2 << 20;
/** Lines this close together are read with one call (page-cache reads cost per call far more than per byte). */
const SPAN_BYTES = 64 << 10;

/**
 * Copies lines of `source` to `writer` in the order given: line i is `lengthOf(i)` bytes at `offsetOf(i)`. A batch of
 * up to 65,536 lines (2 MB at most) is read in file order, near neighbours with one read, and written in the order
 * given.
 */
export async function copyLines(
  source: LineReader,
  count: number,
  offsetOf: (i: number) => number,
  lengthOf: (i: number) => number,
  writer: LineWriter,
): Promise<void> {
  let span = Buffer.alloc(SPAN_BYTES);
  let batch = Buffer.alloc(0);
  for (let start = 0; start < count;) {
    let bytes = 0;
    let end = start;
    while (end < count && end - start < BATCH_ROWS && (end === start || bytes < BATCH_BYTES))
      bytes += lengthOf(end++) + 1;
    const n = end - start;
    // The batch's lines in file order, and where each goes in the batch's output (in the given order).
    const offsets = new Float64Array(n);
    const lengths = new Uint32Array(n);
    const dest = new Float64Array(n);
    for (let i = 0, at = 0; i < n; i++) {
      offsets[i] = offsetOf(start + i);
      lengths[i] = lengthOf(start + i);
      dest[i] = at;
      at += lengths[i] + 1;
    }
    const byOffset = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => offsets[a] - offsets[b]);
    if (batch.length < bytes) batch = Buffer.alloc(bytes);
    const out = batch.subarray(0, bytes).fill(NEWLINE);
    for (let k = 0; k < n;) {
      // One read for this line and the following ones that end within SPAN_BYTES of its start.
      const from = offsets[byOffset[k]];
      let last = k;
      while (last + 1 < n && offsets[byOffset[last + 1]] + lengths[byOffset[last + 1]] - from <= SPAN_BYTES) last++;
      const spanLength = Math.max(lengths[byOffset[k]], offsets[byOffset[last]] + lengths[byOffset[last]] - from);
      if (spanLength > span.length) span = Buffer.alloc(spanLength);
      source.readInto(span, from, spanLength);
      for (; k <= last; k++) {
        const i = byOffset[k];
        span.copy(out, dest[i], offsets[i] - from, offsets[i] - from + lengths[i]);
      }
      if ((k & 0x3ff) === 0) await yieldToLoop();
    }
    await writer.write(out);
    start = end;
  }
}

/** Writes lines to a local file through one buffer of 1 MB. */
export class LineWriter {
  private buf = Buffer.alloc(CHUNK);
  private used = 0;

  private constructor(private readonly file: FileHandle) {}

  static async create(path: string): Promise<LineWriter> {
    return new LineWriter(await open(path, 'w'));
  }

  /** Appends one line (its bytes without the line break; copied, so the caller may reuse its buffer). */
  async line(bytes: Uint8Array): Promise<void> {
    if (this.used + bytes.length + 1 > this.buf.length) {
      await this.flush();
      if (bytes.length + 1 > this.buf.length) this.buf = Buffer.alloc(bytes.length + 1);
    }
    this.buf.set(bytes, this.used);
    this.buf[this.used + bytes.length] = NEWLINE;
    this.used += bytes.length + 1;
  }

  /** Appends one line given as text (UTF-8), encoded straight into the buffer. */
  async text(line: string): Promise<void> {
    const bytes = Buffer.byteLength(line);
    if (this.used + bytes + 1 > this.buf.length) {
      await this.flush();
      if (bytes + 1 > this.buf.length) this.buf = Buffer.alloc(bytes + 1);
    }
    this.used += this.buf.write(line, this.used);
    this.buf[this.used++] = NEWLINE;
  }

  /** Appends bytes that already end in a line break. */
  async write(bytes: Buffer): Promise<void> {
    await this.flush();
    let done = 0;
    while (done < bytes.length) done += (await this.file.write(bytes, done, bytes.length - done)).bytesWritten;
  }

  private async flush(): Promise<void> {
    let done = 0;
    while (done < this.used) done += (await this.file.write(this.buf, done, this.used - done)).bytesWritten;
    this.used = 0;
  }

  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      await this.file.close();
    }
  }
}
