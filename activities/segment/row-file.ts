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

  private fill(): void {
    const rest = this.buf.subarray(this.pos);
    const chunk = Buffer.alloc(Math.max(CHUNK, rest.length * 2));
    rest.copy(chunk);
    const n = readSync(this.fd, chunk, rest.length, chunk.length - rest.length, null);
    if (n === 0) this.eof = true;
    this.bufOffset += this.pos;
    this.buf = chunk.subarray(0, rest.length + n);
    this.pos = 0;
  }

  close(): void {
    closeSync(this.fd);
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

  close(): void {
    closeSync(this.fd);
  }
}

/** Writes lines to a local file in chunks of about 1 MB. */
export class LineWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  private constructor(private readonly file: FileHandle) {}

  static async create(path: string): Promise<LineWriter> {
    return new LineWriter(await open(path, 'w'));
  }

  /** Appends one line (its bytes without the line break; copied, so the caller may reuse its buffer). */
  async line(bytes: Uint8Array): Promise<void> {
    this.pending.push(Buffer.from(bytes), NEWLINE_BUF);
    this.pendingBytes += bytes.length + 1;
    if (this.pendingBytes >= CHUNK) await this.flush();
  }

  private async flush(): Promise<void> {
    if (!this.pendingBytes) return;
    const body = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    await this.file.write(body);
  }

  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      await this.file.close();
    }
  }
}

const NEWLINE_BUF = Buffer.from('\n');
