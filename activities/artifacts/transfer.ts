import { readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import pLimit from 'p-limit';
import { sha256File } from './hashing';
import type { OutputEntry } from './manifest';
import { storeDefaults, type ExpectedObject, type ObjectStore } from '../../store';

/** The files of a local tree as paths relative to it, '/'-separated, in the order of their full paths. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  return files.sort().map((f) => relative(dir, f).split(sep).join('/'));
}

/**
 * Uploads a directory tree under `prefix`, several files at once (each with its own parts in flight on S3), hashing
 * each file as it is sent; returns what was written, in key order, for the manifest that is committed after it.
 *
 * `known` are objects already in the store (the last checkpoint's files): a local file of the same size and sha256
 * is copied inside the store instead of being sent again. `skip` leaves files out.
 */
export async function uploadDir(
  store: ObjectStore,
  localDir: string,
  prefix: string,
  options: { known?: readonly OutputEntry[]; skip?: (relativePath: string) => boolean } = {},
): Promise<OutputEntry[]> {
  const limit = pLimit(storeDefaults.filesInFlight);
  const files = (await filesUnder(localDir)).filter((f) => !options.skip?.(f));
  const known = options.known ?? [];
  return Promise.all(
    files.map((file) =>
      limit(async (): Promise<OutputEntry> => {
        const key = `${prefix}/${file}`;
        const path = join(localDir, file);
        const bytes = (await stat(path)).size;
        // Only a file whose size matches a stored one is worth hashing first.
        const sameSize = known.filter((k) => k.bytes === bytes && k.sha256 !== '');
        if (sameSize.length > 0) {
          const sha256 = await sha256File(path);
          const twin = sameSize.find((k) => k.sha256 === sha256);
          if (twin) {
            await store.copy(twin.key, key);
            return { key, bytes, sha256 };
          }
        }
        return { key, ...(await store.putFile(key, path)) };
      }),
    ),
  );
}

/** Where an object below `prefix` lands below `localDir`; the object `prefix` itself lands at `localDir`. */
export const localPathUnder = (prefix: string, key: string, localDir: string) =>
  key === prefix ? localDir : join(localDir, ...key.slice(prefix.length + 1).split('/'));

/**
 * Downloads these objects under `localDir`, keeping their paths below `prefix`, several at once, each verified as it
 * streams in against the size and sha256 its entry records (a manifest's), if any.
 * @throws IntegrityError naming the first damaged object.
 */
export async function downloadVerified(
  store: ObjectStore,
  entries: ReadonlyArray<{ key: string } & ExpectedObject>,
  prefix: string,
  localDir: string,
): Promise<void> {
  const limit = pLimit(storeDefaults.filesInFlight);
  await Promise.all(entries.map((e) => limit(() => store.getFile(e.key, localPathUnder(prefix, e.key, localDir), e))));
}

/** Downloads every object under `prefix` into `localDir`, keeping relative paths (for folders no manifest covers). */
export async function downloadPrefix(
  store: ObjectStore,
  prefix: string,
  localDir: string,
  skip?: (key: string) => boolean,
): Promise<number> {
  const keys = (await store.list(`${prefix}/`)).filter((k) => !skip?.(k));
  await downloadVerified(
    store,
    keys.map((key) => ({ key })),
    prefix,
    localDir,
  );
  return keys.length;
}
