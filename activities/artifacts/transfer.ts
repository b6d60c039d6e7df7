import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { sha256File } from './hashing';
import type { OutputEntry } from './manifest';
import { allowedLocation, openObject, type ObjectStore } from '../../store';
import type { ActivityDeps } from '../deps';
import { InvalidDataError } from '../../common/failures';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out.sort();
}

/** Uploads a directory tree under `prefix`; returns what was written, for the manifest that is committed after it. */
export async function uploadDir(store: ObjectStore, localDir: string, prefix: string): Promise<OutputEntry[]> {
  const entries: OutputEntry[] = [];
  for (const file of await filesUnder(localDir)) {
    const key = `${prefix}/${relative(localDir, file).split(sep).join('/')}`;
    await store.putFile(key, file);
    entries.push({ key, bytes: (await stat(file)).size, sha256: await sha256File(file) });
  }
  return entries;
}

/** Downloads every object under `prefix` into `localDir`, keeping relative paths. */
export async function downloadPrefix(
  store: ObjectStore,
  prefix: string,
  localDir: string,
  skip?: (key: string) => boolean,
): Promise<number> {
  const keys = await store.list(`${prefix}/`);
  await mkdir(localDir, { recursive: true });
  let n = 0;
  for (const key of keys) {
    if (skip?.(key)) continue;
    await store.getFile(key, join(localDir, ...key.slice(prefix.length + 1).split('/')));
    n += 1;
  }
  return n;
}

const isUri = (s: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(s);

/**
 * A local path for a model to load: builtin names pass through, local directories (only under the worker's allowed
 * folders) are used in place, store URIs (a folder, with or without a trailing '/') are downloaded into `localDir`.
 * A model that is not there is bad input, not a transient fault.
 */
export async function localModel(
  deps: Pick<ActivityDeps, 'env' | 'fileRoots'>,
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
  if ((await downloadPrefix(store, key, localDir)) === 0) {
    throw new InvalidDataError(`${setting}: no model files under ${model}`, { field: setting });
  }
  return localDir;
}
