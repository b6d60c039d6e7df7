// A user file read as a stream: gzip unpacked on the fly, other compressions refused by name, UTF-8 checked chunk by
// chunk, so no file is ever held whole. Every error names the file and, where there is one, the line, never the bytes.
import type { Hash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { InvalidDataError } from '../../common/failures';

/** Leading bytes of the compressed formats people hand in by mistake, first match wins. */
const SIGNATURES: ReadonlyArray<{ format: string; magic: number[] }> = [
  { format: 'gzip', magic: [0x1f, 0x8b] },
  { format: 'zstd', magic: [0x28, 0xb5, 0x2f, 0xfd] },
  { format: 'xz', magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { format: 'bzip2', magic: [0x42, 0x5a, 0x68] },
  { format: 'zip', magic: [0x50, 0x4b, 0x03, 0x04] },
  { format: '7z', magic: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c] },
  { format: 'lz4', magic: [0x04, 0x22, 0x4d, 0x18] },
];

/** The longest signature; that many bytes are looked at before anything is decoded. */
const SNIFF_BYTES = 6;

const compressionOf = (bytes: Uint8Array): string | undefined =>
  SIGNATURES.find(({ magic }) => magic.every((b, i) => bytes[i] === b))?.format;

/** Only called once the bytes failed: the first line (1-based within `bytes`) that is not UTF-8 on its own. */
function firstInvalidLine(bytes: Buffer): number {
  for (let line = 1, start = 0; ; line++) {
    const end = bytes.indexOf(0x0a, start);
    if (end === -1 || !isUtf8(bytes.subarray(start, end))) return line;
    start = end + 1;
  }
}

/** The unpacked bytes of a stream: gzip inflated, other compressions refused naming the file. */
export async function* unpackedBytes(input: Readable, source: string): AsyncGenerator<Buffer> {
  try {
    const iterator = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let head = Buffer.alloc(0);
    while (head.length < SNIFF_BYTES) {
      const next = await iterator.next();
      if (next.done) break;
      head = Buffer.concat([head, next.value]);
    }
    const format = compressionOf(head);
    if (head.subarray(0, 4).toString('latin1') === 'PAR1') {
      throw new InvalidDataError(
        `${source}: the file is Parquet; name it .parquet or set datasetFormat to "<layout>-parquet"`,
        { file: source, field: 'input.datasetFormat' },
      );
    }
    if (format !== undefined && format !== 'gzip') {
      throw new InvalidDataError(
        `${source}: the file is ${format}-compressed, which is not supported; decompress it or compress it with gzip`,
        { file: source },
      );
    }
    const raw = async function* (): AsyncGenerator<Buffer> {
      if (head.length) yield head;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    };
    if (format === undefined) yield* raw();
    else yield* gunzipped(raw(), source);
  } finally {
    // A reader that stops early (a first repeated id found, say) must not leave the file open until a collection.
    input.destroy();
  }
}

/** Gzip data inflated; data that ends or breaks before its end is named with the line of unpacked text it cut. */
async function* gunzipped(bytes: AsyncIterable<Buffer>, source: string): AsyncGenerator<Buffer> {
  const gunzip = createGunzip();
  // An error of either side ends the reading of `gunzip`; destroying it (a reader that stops early) ends the pipe.
  pipeline(bytes, gunzip, () => {});
  let lines = 0;
  try {
    for await (const chunk of gunzip) {
      lines += countNewlines(chunk as Buffer);
      yield chunk as Buffer;
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (err instanceof InvalidDataError || !code?.startsWith('Z_')) throw err;
    throw new InvalidDataError(`${source}: gzip data is damaged (${code}) at line ${lines + 1}`, {
      file: source,
      line: lines + 1,
    });
  } finally {
    gunzip.destroy();
  }
}

/**
 * The bytes at the end of `bytes` from its last lead byte, when that is among its last four: a character the
 * decoder may hold back for the next chunk (a complete one is harmless, it is valid and on the same line).
 */
function heldBytes(bytes: Buffer): Buffer {
  let i = bytes.length - 1;
  while (i >= Math.max(0, bytes.length - 3) && (bytes[i] & 0xc0) === 0x80) i--;
  return i >= 0 && bytes[i] >= 0xc0 ? bytes.subarray(i) : Buffer.alloc(0);
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
  // Stream mode holds a character split between two chunks until the next one.
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let linesBefore = 0;
  // What the decoder may hold: on a failure it is where the current line's bytes start.
  let held: Buffer = Buffer.alloc(0);
  let first = true;
  /** The text of `chunk`, or with none the end of the input; a failure names the line its bytes start on. */
  const decode = (chunk?: Buffer): string => {
    try {
      return chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
    } catch {
      const line = linesBefore + firstInvalidLine(chunk ? Buffer.concat([held, chunk]) : held);
      throw new InvalidDataError(`${source} line ${line}: not valid UTF-8; save the file as UTF-8`, {
        file: source,
        line,
      });
    }
  };
  for await (const chunk of bytes) {
    hash?.update(chunk);
    if (first && chunk.length >= 2) {
      first = false;
      if ((chunk[0] === 0xff && chunk[1] === 0xfe) || (chunk[0] === 0xfe && chunk[1] === 0xff)) {
        throw new InvalidDataError(`${source}: the file is UTF-16 (it starts with a UTF-16 BOM); save it as UTF-8`, {
          file: source,
          line: 1,
        });
      }
    }
    const text = decode(chunk);
    linesBefore += countNewlines(chunk);
    // A chunk shorter than a character may end one begun in the chunk before.
    held = heldBytes(chunk.length >= 4 ? chunk : Buffer.concat([held, chunk]));
    if (text) yield text;
  }
  const rest = decode();
  if (rest) yield rest;
}
