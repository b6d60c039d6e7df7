import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import pLimit from 'p-limit';
import { sha256File } from './hashing';
import { handOffAt, receiveModel } from './hand-off';
import type { OutputEntry } from './manifest';
import { allowedLocation, openObject, storeDefaults, type ExpectedObject, type ObjectStore } from '../../store';
import type { ActivityDeps } from '../deps';
import { badSetting } from '../../common/failures';

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
  await mkdir(localDir, { recursive: true });
  await Promise.all(
    entries.map((e) =>
      limit(() => store.getFile(e.key, join(localDir, ...e.key.slice(prefix.length + 1).split('/')), e)),
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
  await downloadVerified(
    store,
    keys.map((key) => ({ key })),
    prefix,
    localDir,
  );
  return keys.length;
}

const isUri = (s: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(s);

/**
 * A local path for a model to load: builtin names pass through, local directories (only under the worker's allowed
 * folders) are used in place, store URIs (a folder, with or without a trailing '/') are downloaded into `localDir`.
 * A model a step of ours committed is a hand-off (see receiveModel). A model that is not there is bad input, not a transient fault.
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
    if (!existsSync(dir)) throw badSetting(setting, `model directory ${model} does not exist on this worker`);
    return dir;
  }
  const handOff = await handOffAt(model, deps.env);
  if (handOff) return receiveModel(handOff, deps.workDir, localDir);
  // A folder no manifest of ours covers (a model a user uploaded): there is nothing to check its bytes against.
  const { store, key } = openObject(model.replace(/\/+$/, ''), deps.env, { setting });
  await rm(localDir, { recursive: true, force: true });
  if ((await downloadPrefix(store, key, localDir)) === 0) {
    throw badSetting(setting, `no model files under ${model}`);
  }
  return localDir;
}
