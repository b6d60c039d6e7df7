// User files arrive as bytes: compressed or not, UTF-8 or not. They become text here or fail with a message that
// names the file, the line and what was found, never the bytes themselves.
import { constants as bufferConstants } from 'node:buffer';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { InvalidDataError } from '../../common/failures';

const gunzipAsync = promisify(gunzip);

/** Leading bytes of the compressed and non-UTF-8 formats people hand in by mistake, first match wins. */
const SIGNATURES: ReadonlyArray<{ format: string; magic: number[] }> = [
  { format: 'gzip', magic: [0x1f, 0x8b] },
  { format: 'zstd', magic: [0x28, 0xb5, 0x2f, 0xfd] },
  { format: 'xz', magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { format: 'bzip2', magic: [0x42, 0x5a, 0x68] },
  { format: 'zip', magic: [0x50, 0x4b, 0x03, 0x04] },
  { format: '7z', magic: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c] },
  { format: 'lz4', magic: [0x04, 0x22, 0x4d, 0x18] },
];

/** The compression format the bytes start with, if any. */
export function compressionOf(bytes: Uint8Array): string | undefined {
  return SIGNATURES.find(({ magic }) => magic.every((b, i) => bytes[i] === b))?.format;
}

/**
 * The text of a dataset or benchmark file: gzip is unpacked, other compressions are refused by name, and the result
 * must be valid UTF-8. A BOM is kept, so the text (and every hash of it) is what a plain read always gave.
 */
export async function decodeUserFile(bytes: Uint8Array, source: string): Promise<string> {
  const format = compressionOf(bytes);
  if (format === 'gzip') return utf8(await gunzipped(bytes, source), source);
  if (format !== undefined) {
    throw new InvalidDataError(
      `${source}: the file is ${format}-compressed, which is not supported; decompress it or compress it with gzip`,
      { file: source },
    );
  }
  return utf8(bytes, source);
}

async function gunzipped(bytes: Uint8Array, source: string): Promise<Uint8Array> {
  // Off the event loop (heartbeats keep flowing) and bounded: a small bomb must not take the worker's memory.
  const limit = bufferConstants.MAX_STRING_LENGTH;
  try {
    return await gunzipAsync(bytes, { maxOutputLength: limit });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') {
      throw new InvalidDataError(`${source}: unpacks to more than ${limit} bytes, more than one file can hold here`, {
        file: source,
      });
    }
    throw new InvalidDataError(`${source}: gzip data is damaged (${code ?? 'unreadable'})`, { file: source });
  }
}

function utf8(bytes: Uint8Array, source: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    const utf16 = (bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff);
    if (utf16) {
      throw new InvalidDataError(`${source}: the file is UTF-16 (it starts with a UTF-16 BOM); save it as UTF-8`, {
        file: source,
        line: 1,
      });
    }
    const line = firstInvalidLine(bytes);
    throw new InvalidDataError(`${source} line ${line}: not valid UTF-8; save the file as UTF-8`, {
      file: source,
      line,
    });
  }
}

/** Only called once the bytes failed: decodes line by line to name the first bad one (1-based within `bytes`). */
export function firstInvalidLine(bytes: Uint8Array): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let line = 1;
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i < bytes.length && bytes[i] !== 0x0a) continue;
    try {
      decoder.decode(bytes.subarray(start, i));
    } catch {
      return line;
    }
    line += 1;
    start = i + 1;
  }
  return line - 1;
}
