import { open, type FileHandle } from 'node:fs/promises';
import { literal, type Rows, type SqlValues } from './engine';

const NEWLINE = 0x0a;
const CHUNK = 1 << 20;

/** Writes lines to a local file through one buffer of 1 MB. */
export class LineWriter {
  private buf = Buffer.alloc(CHUNK);
  private used = 0;

  private constructor(private readonly file: FileHandle) {}

  static async create(path: string): Promise<LineWriter> {
    return new LineWriter(await open(path, 'w'));
  }

  /** Appends one line (without its line break): bytes are copied, text is encoded straight into the buffer. */
  async text(line: string | Uint8Array): Promise<void> {
    const bytes = typeof line === 'string' ? Buffer.byteLength(line) : line.length;
    if (this.used + bytes + 1 > this.buf.length) {
      await this.flush();
      if (bytes + 1 > this.buf.length) this.buf = Buffer.alloc(bytes + 1);
    }
    if (typeof line === 'string') this.buf.write(line, this.used);
    else this.buf.set(line, this.used);
    this.used += bytes;
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

/**
 * Writes the `line` column a query selects, in its order, to a local file, each line's bytes as they are and "\n"
 * after each: CSV without header, quote or escape and with a delimiter a JSON line never holds (JSON.stringify escapes
 * every control character). Returns the number of lines written.
 */
export async function copyLines(rows: Rows, sql: string, path: string, values?: SqlValues): Promise<number> {
  const copied = await rows.runAndReadAll(
    `COPY (${sql}) TO ${literal(path)} ` +
      `(FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER chr(1), NEW_LINE '\\n')`,
    values,
  );
  return Number(copied.getRows()[0][0]);
}
