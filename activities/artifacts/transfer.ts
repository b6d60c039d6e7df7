import { ApplicationFailure } from '@temporalio/common';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import pLimit from 'p-limit';
import { hashInputs, sha256File } from './hashing';
import { readManifest, type OutputEntry } from './manifest';
import { manifestIn } from './run-keys';
import { allowedLocation, IntegrityError, openObject, storeDefaults, type ObjectStore } from '../../store';
import type { ActivityDeps } from '../deps';
import { FailureType, InvalidDataError } from '../../common/failures';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out.sort();
}

const keyUnder = (prefix: string, localDir: string, file: string) =>
  `${prefix}/${relative(localDir, file).split(sep).join('/')}`;

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
  const files = (await filesUnder(localDir)).filter((f) => !options.skip?.(relative(localDir, f).split(sep).join('/')));
  const known = options.known ?? [];
  return Promise.all(
    files.map((file) =>
      limit(async (): Promise<OutputEntry> => {
        const key = keyUnder(prefix, localDir, file);
        const bytes = (await stat(file)).size;
        // Only a file whose size matches a stored one is worth hashing first.
        const sameSize = known.filter((k) => k.bytes === bytes && k.sha256 !== '');
        if (sameSize.length > 0) {
          const sha256 = await sha256File(file);
          const twin = sameSize.find((k) => k.sha256 === sha256);
          if (twin) {
            await store.copy(twin.key, key);
            return { key, bytes, sha256 };
          }
        }
        return { key, ...(await store.putFile(key, file)) };
      }),
    ),
  );
}

/**
 * Downloads exactly these objects (as a manifest lists them) under `localDir`, keeping their paths below `prefix`,
 * several at once, each verified against its recorded size and sha256 as it streams in.
 * @throws IntegrityError naming the first damaged object.
 */
export async function downloadVerified(
  store: ObjectStore,
  entries: readonly OutputEntry[],
  prefix: string,
  localDir: string,
): Promise<void> {
  const limit = pLimit(storeDefaults.filesInFlight);
  await mkdir(localDir, { recursive: true });
  await Promise.all(
    entries.map((e) =>
      limit(() =>
        store.getFile(e.key, join(localDir, ...e.key.slice(prefix.length + 1).split('/')), {
          bytes: e.bytes,
          sha256: e.sha256,
        }),
      ),
    ),
  );
}

/** Downloads every object under `prefix` into `localDir`, keeping relative paths (for folders no manifest covers). */
export async function downloadPrefix(
  store: ObjectStore,
  prefix: string,
  localDir: string,
  skip?: (key: string) => boolean,
): Promise<number> {
  const keys = (await store.list(`${prefix}/`)).filter((k) => !skip?.(k));
  await mkdir(localDir, { recursive: true });
  const limit = pLimit(storeDefaults.filesInFlight);
  await Promise.all(
    keys.map((key) => limit(() => store.getFile(key, join(localDir, ...key.slice(prefix.length + 1).split('/'))))),
  );
  return keys.length;
}

/**
 * The entries a committed step recorded for the files under folder `prefix` (a stage's `final`): the step's manifest
 * sits in the folder above. Undefined for a folder no manifest of ours covers (a model a user uploaded).
 */
export async function committedEntries(store: ObjectStore, prefix: string): Promise<OutputEntry[] | undefined> {
  const parent = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
  if (parent === '') return undefined;
  const manifest = await readManifest<unknown>(store, manifestIn(parent)).catch(() => null);
  const entries = manifest?.outputs?.filter((o) => o.key.startsWith(`${prefix}/`));
  return entries && entries.length > 0 ? entries : undefined;
}

/** The bad bytes of a committed step's output: never used; `resume` recomputes the step that wrote them. */
export function corruptArtifact(err: IntegrityError, setting: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `${setting}: ${err.message}. The step that wrote it checks its outputs' sha256 when it is reused, so ` +
      '`pift resume` recomputes it',
    FailureType.CorruptArtifact,
  );
}

/** Where models live on this worker between activities, each under the hash of its files. */
const modelCacheDir = (workDir: string) => join(workDir, 'models');
/** Models kept in the cache: the one just trained and the one before, enough for stage k+1 and generation. */
const MODEL_CACHE_KEEP = 3;

/** One name for a folder of files: its relative paths and their sha256. */
export const treeHash = (entries: readonly OutputEntry[], prefix: string): string =>
  hashInputs(entries.map((e) => [e.key.slice(prefix.length + 1), e.sha256]).sort());

/** The cached copy of a model, when every file is still there with its recorded sha256 (read locally, once). */
async function cachedModel(dir: string, entries: readonly OutputEntry[], prefix: string): Promise<boolean> {
  if (!existsSync(dir)) return false;
  for (const e of entries) {
    const file = join(dir, ...e.key.slice(prefix.length + 1).split('/'));
    if (!existsSync(file) || (await sha256File(file)) !== e.sha256) {
      await rm(dir, { recursive: true, force: true });
      return false;
    }
  }
  const now = new Date();
  await utimes(dir, now, now); // most recently used: the last to be evicted
  return true;
}

/**
 * Keeps a model this worker just produced (and committed as `entries` under `prefix`), so that the next stage or
 * generation on this worker uses it instead of downloading it again. Moves `localDir` away.
 */
export async function keepModel(
  workDir: string,
  localDir: string,
  entries: readonly OutputEntry[],
  prefix: string,
): Promise<void> {
  const cache = modelCacheDir(workDir);
  const dir = join(cache, treeHash(entries, prefix));
  await mkdir(cache, { recursive: true });
  await rm(dir, { recursive: true, force: true });
  await rename(localDir, dir);
  const now = new Date();
  await utimes(dir, now, now);
  await evict(cache);
}

async function evict(cache: string): Promise<void> {
  const dirs = await Promise.all(
    (await readdir(cache, { withFileTypes: true }))
      .filter((d) => d.isDirectory() && !d.name.includes('.'))
      .map(async (d) => ({ path: join(cache, d.name), mtime: (await stat(join(cache, d.name))).mtimeMs })),
  );
  dirs.sort((a, b) => b.mtime - a.mtime);
  for (const d of dirs.slice(MODEL_CACHE_KEEP)) await rm(d.path, { recursive: true, force: true });
}

const isUri = (s: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(s);

/**
 * A local path for a model to load: builtin names pass through, local directories (only under the worker's allowed
 * folders) are used in place, store URIs (a folder, with or without a trailing '/') are downloaded into `localDir`.
 * A model a step of ours committed is verified file by file against its manifest, and taken from this worker's
 * cache when it is there. A model that is not there is bad input, not a transient fault.
 */
export async function localModel(
  deps: Pick<ActivityDeps, 'env' | 'fileRoots'> & Partial<Pick<ActivityDeps, 'workDir'>>,
  model: string,
  localDir: string,
  setting: string,
): Promise<string> {
  // The trainer resolves these itself, from its model cache (filled by the model check on this worker).
  if (model.startsWith('builtin:') || model.startsWith('hf://')) return model;
  allowedLocation(model, deps.fileRoots, setting);
  if (!isUri(model)) {
    // The path that was checked: given as is, `link/..` would make the kernel climb from the link's target instead.
    const dir = resolve(model);
    if (!existsSync(dir))
      throw new InvalidDataError(`${setting}: model directory ${model} does not exist on this worker`, {
        field: setting,
      });
    return dir;
  }
  const { store, key } = openObject(model.replace(/\/+$/, ''), deps.env, { setting });
  await rm(localDir, { recursive: true, force: true });
  const entries = await committedEntries(store, key);
  if (entries) {
    const cached = deps.workDir ? join(modelCacheDir(deps.workDir), treeHash(entries, key)) : undefined;
    if (cached && (await cachedModel(cached, entries, key))) return cached;
    const target = cached ? `${cached}.incomplete` : localDir;
    await rm(target, { recursive: true, force: true });
    try {
      await downloadVerified(store, entries, key, target);
    } catch (err) {
      if (err instanceof IntegrityError) throw corruptArtifact(err, setting);
      throw err;
    }
    if (!cached) return localDir;
    await mkdir(dirname(cached), { recursive: true });
    await rename(target, cached);
    const now = new Date();
    await utimes(cached, now, now);
    await evict(dirname(cached));
    return cached;
  }
  if ((await downloadPrefix(store, key, localDir)) === 0) {
    throw new InvalidDataError(`${setting}: no model files under ${model}`, { field: setting });
  }
  return localDir;
}
