import { createHash, randomBytes } from 'node:crypto';
import * as fsc from 'node:fs';
import { promises as fs } from 'node:fs';
import { promisify } from 'node:util';
import * as path from 'node:path';
import { TEMP_SUFFIX } from './keys';
import type { WrittenObject } from './object-store';

/**
 * Directories this process has already created. Scoring and judging write one small cache object per answer into a
 * few hundred directories: a mkdir per write cost more main-thread time than the write itself. A directory removed
 * behind our back shows up as ENOENT on open, which creates it again.
 */
const madeDirs = new Set<string>();

async function ensureDir(dir: string, again = false): Promise<void> {
  if (!again && madeDirs.has(dir)) return;
  await fs.mkdir(dir, { recursive: true });
  madeDirs.add(dir);
}

/**
 * What makes a temporary name unique: random per process (other processes may write the same key into a shared
 * directory), then counted. Random bytes per write cost the many small answer-cache writes more than their rename.
 */
const tempPrefix = randomBytes(6).toString('hex');
let tempCount = 0;

/** The temporary sibling of `target`: its name ends in TEMP_SUFFIX, which `list` skips and no key may use. */
function tempPathFor(target: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.${tempPrefix}${(tempCount++).toString(36)}${TEMP_SUFFIX}`,
  );
}

/** Runs `attempt`, and once more after creating the directory again when it vanished since we made it. */
async function inDir<T>(dir: string, attempt: () => Promise<T>): Promise<T> {
  await ensureDir(dir);
  try {
    return await attempt();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await ensureDir(dir, true);
    return attempt();
  }
}

async function commit<T>(tmpPath: string, target: string, work: () => Promise<T>): Promise<T> {
  try {
    const result = await work();
    await fs.rename(tmpPath, target);
    return result;
  } catch (err) {
    await fs.rm(tmpPath, { force: true });
    throw err;
  }
}

/**
 * Runs `write` against a temporary sibling of `target` and renames it into place, so a reader (or a process restarted
 * after a crash) sees the old file or the complete new one, never a torn one; `write` flushes what it wrote, as
 * `hashedCopy` does. Returns what `write` returned.
 */
export async function writeFileAtomically<T>(target: string, write: (tmpPath: string) => Promise<T>): Promise<T> {
  // Always made, never taken from the memo: `write` may consume a one-shot stream (a download), so an attempt that
  // found its directory gone could not be run again. These writes are few and large; a mkdir is nothing beside them.
  await ensureDir(path.dirname(target), true);
  const tmpPath = tempPathFor(target);
  return commit(tmpPath, target, () => write(tmpPath));
}

// The callback API, not fs.promises: for the many small answer-cache writes, creating and tracking a FileHandle cost
// more main-thread time than the write itself.
const writeFile = promisify(fsc.writeFile);

/**
 * `writeFileAtomically` for bytes in memory: opened, written, flushed and closed by one call (a promise per step cost
 * more than the system calls). With `flush` false the flush is skipped (a third of the write's cost on a small file):
 * still renamed into place whole, but a crash may leave the file empty.
 */
export async function writeBytesAtomically(target: string, body: string | Uint8Array, flush = true): Promise<void> {
  await inDir(path.dirname(target), () => {
    const tmpPath = tempPathFor(target);
    // 'wx': the name is fresh, so an existing file there is a bug, not something to overwrite.
    return commit(tmpPath, target, () => writeFile(tmpPath, body, { flag: 'wx', flush }));
  });
}

/**
 * Creates `target` with `body` unless it exists: written whole to a temporary sibling, flushed, then hard-linked into
 * place, which fails with EEXIST when the name is taken, so of several racing writers exactly one gets true.
 */
export async function linkIfAbsent(target: string, body: string): Promise<boolean> {
  const tmpPath = tempPathFor(target);
  return inDir(path.dirname(target), async () => {
    try {
      // The temporary name is fresh and listed by no one, so it needs no atomic write of its own: only a flush.
      await writeFile(tmpPath, body, { flag: 'wx', flush: true });
      await fs.link(tmpPath, target);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    } finally {
      await fs.rm(tmpPath, { force: true });
    }
  });
}

/**
 * Passes `chunks` on, hashing and counting them, so an upload or a download needs no second read of the bytes to
 * know their sha256. `digest` is read once, after the last chunk.
 */
export function hashing(chunks: AsyncIterable<Uint8Array>): {
  chunks: AsyncGenerator<Uint8Array>;
  digest(): WrittenObject;
} {
  const hash = createHash('sha256');
  let bytes = 0;
  async function* tap() {
    for await (const chunk of chunks) {
      hash.update(chunk);
      bytes += chunk.length;
      yield chunk;
    }
  }
  return { chunks: tap(), digest: () => ({ bytes, sha256: hash.digest('hex') }) };
}

/** Bytes a local copy moves per read and write. */
const COPY_CHUNK = 1 << 20;

/**
 * A file's bytes through one reused buffer: a stream would allocate a buffer per 64 KB chunk, garbage that piles up
 * outside the heap until a collection (tens of MB for a dataset of a million rows, on top of the step's own memory)
 * and that the allocator then keeps. Each chunk is valid until the next one is asked for.
 */
export async function* fileChunks(file: string): AsyncGenerator<Buffer> {
  const buffer = Buffer.allocUnsafe(COPY_CHUNK);
  const source = await fs.open(file, 'r');
  try {
    for (let n; (n = (await source.read(buffer, 0, COPY_CHUNK)).bytesRead) > 0;) yield buffer.subarray(0, n);
  } finally {
    await source.close();
  }
}

/**
 * Copies `chunks` into the file `to` and flushes it to disk, hashing the bytes on the way, each chunk written whole
 * before the next is read.
 */
export async function hashedCopy(chunks: AsyncIterable<Uint8Array>, to: string): Promise<WrittenObject> {
  const copied = hashing(chunks);
  const target = await fs.open(to, 'w');
  try {
    for await (const chunk of copied.chunks) {
      for (let done = 0; done < chunk.length;) done += (await target.write(chunk, done)).bytesWritten;
    }
    await target.datasync();
  } finally {
    await target.close();
  }
  return copied.digest();
}
