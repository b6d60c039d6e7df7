import { mkdir, readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { sha256File } from './hashing';
import type { OutputEntry } from './manifest';
import type { ObjectStore } from '../store';

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
