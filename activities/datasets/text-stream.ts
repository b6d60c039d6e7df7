// A user file read as a stream: gzip unpacked on the fly, other compressions refused by name, UTF-8 checked chunk by
// chunk, so no file is ever held whole. Same rules and messages as decode.ts, which reads a file held in memory.
import { createHash, type Hash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { InvalidDataError } from '../../common/failures';
import { compressionOf, firstInvalidLine } from './decode';

/** The longest signature SIGNATURES in decode.ts checks; that many bytes are looked at before anything is decoded. */
const SNIFF_BYTES = 6;

/** Gzip data that ends or breaks before its end; utf8Chunks names the line of unpacked text it cut (`at`). */
class DamagedGzip extends InvalidDataError {
  constructor(
    private readonly source: string,
    code: string,
  ) {
    super(`${source}: gzip data is damaged (${code})`, { file: source });
  }

  at(line: number): InvalidDataError {
    return new InvalidDataError(`${this.message} at line ${line}`, { file: this.source, line });
  }
}

/** The unpacked bytes of a stream: gzip inflated, other compressions refused naming the file. */
export async function* unpackedBytes(input: Readable, source: string): AsyncGenerator<Buffer> {
  const iterator = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let head = Buffer.alloc(0);
  while (head.length < SNIFF_BYTES) {
    const next = await iterator.next();
    if (next.done) break;
    head = Buffer.concat([head, next.value]);
  }
  const format = compressionOf(head);
  if (head.subarray(0, 4).toString('latin1') === 'PAR1') {
    input.destroy();
    throw new InvalidDataError(
      `${source}: the file is Parquet; name it .parquet or set datasetFormat to "<layout>-parquet"`,
      { file: source, field: 'input.datasetFormat' },
    );
  }
  if (format !== undefined && format !== 'gzip') {
    input.destroy();
    throw new InvalidDataError(
      `${source}: the file is ${format}-compressed, which is not supported; decompress it or compress it with gzip`,
      { file: source },
    );
  }
  async function* raw(): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  if (format === undefined) {
    try {
      yield* raw();
    } finally {
      // A reader that stops early (a first repeated id found, say) must not leave the file open until a collection.
      input.destroy();
    }
    return;
  }
  const gunzip = createGunzip();
  const feed = feedInto(gunzip, raw());
  try {
    for await (const chunk of gunzip) yield chunk as Buffer;
  } catch (err) {
    if (err instanceof InvalidDataError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code?.startsWith('Z_')) {
      throw new DamagedGzip(source, code);
    }
    throw err;
  } finally {
    input.destroy();
    gunzip.destroy();
    await feed;
  }
}

/**
 * Writes `chunks` into a transform stream, waiting for room; ends it after the last. A reader that stops early destroys
 * the stream: a destroyed stream never sends 'drain', so the wait also ends on 'close' and the feed stops there (it
 * used to wait for ever, and the clean-up that awaits the feed with it).
 */
export async function feedInto(into: Writable, chunks: AsyncIterable<Buffer | string>): Promise<void> {
  try {
    for await (const chunk of chunks) {
      if (into.destroyed) return;
      if (!into.write(chunk)) await roomIn(into);
    }
    if (!into.destroyed) into.end();
  } catch (err) {
    into.destroy(err as Error);
  }
}

/** Resolves on 'drain', or once the stream is closed or failed (no 'drain' comes then). */
function roomIn(stream: Writable): Promise<void> {
  if (stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done).off('close', done).off('error', done);
      resolve();
    };
    stream.on('drain', done).on('close', done).on('error', done);
  });
}

/** Where an incomplete UTF-8 sequence at the end of `bytes` starts (bytes.length when the end is complete). */
function completeLength(bytes: Uint8Array): number {
  let i = bytes.length - 1;
  let continuation = 0;
  while (i >= 0 && continuation < 3 && (bytes[i] & 0xc0) === 0x80) {
    i--;
    continuation++;
  }
  if (i < 0) return bytes.length;
  const lead = bytes[i];
  const needs = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return bytes.length - i < needs ? i : bytes.length;
}

const countNewlines = (bytes: Uint8Array): number => {
  let n = 0;
  for (let i = bytes.indexOf(0x0a); i !== -1; i = bytes.indexOf(0x0a, i + 1)) n++;
  return n;
};

/**
 * Text chunks of a byte stream that must be UTF-8; invalid bytes fail naming their line, a UTF-16 file is named as
 * such. A BOM is kept. `hash`, when given, is fed the bytes, so it ends as the sha256 of the whole text.
 */
export async function* utf8Chunks(bytes: AsyncIterable<Buffer>, source: string, hash?: Hash): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let carry: Buffer = Buffer.alloc(0);
  let linesBefore = 0;
  let first = true;
  const decode = (part: Buffer): string => {
    try {
      return decoder.decode(part);
    } catch {
      const line = linesBefore + firstInvalidLine(part);
      throw new InvalidDataError(`${source} line ${line}: not valid UTF-8; save the file as UTF-8`, {
        file: source,
        line,
      });
    }
  };
  try {
    for await (const chunk of chunks()) yield chunk;
  } catch (err) {
    throw err instanceof DamagedGzip ? err.at(linesBefore + 1) : err;
  }

  async function* chunks(): AsyncGenerator<string> {
    for await (const chunk of bytes) {
      hash?.update(chunk);
      const data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      if (first && data.length >= 2) {
        first = false;
        if ((data[0] === 0xff && data[1] === 0xfe) || (data[0] === 0xfe && data[1] === 0xff)) {
          throw new InvalidDataError(`${source}: the file is UTF-16 (it starts with a UTF-16 BOM); save it as UTF-8`, {
            file: source,
            line: 1,
          });
        }
      }
      const cut = completeLength(data);
      const whole = data.subarray(0, cut);
      carry = Buffer.from(data.subarray(cut));
      if (whole.length === 0) continue;
      const text = decode(whole);
      linesBefore += countNewlines(whole);
      yield text;
    }
    if (carry.length) yield decode(carry);
  }
}

/** The sha256 of the text `utf8Chunks` reads, once it has read to the end. */
export const newTextHash = (): Hash => createHash('sha256');
