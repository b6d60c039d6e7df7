// Which local folders a worker lets a run touch. Workflow input comes from whoever can start a run, so a `file://`
// URI or a plain path in it must not reach the worker's own files (`/proc/self/environ`, keys, other users' data).
import { readlinkSync, realpathSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_STORE_DIR } from '../common/settings/constants';
import { badUri, settingError } from './errors';

/** The worker setting that lists the allowed folders, separated like PATH (':' on POSIX, ';' on Windows). */
export const FILE_ROOTS_SETTING = 'PIFT_FILE_ROOTS';

/** The scheme of a URI (`s3`, `file`), lower-cased, or undefined for a plain path. */
export const schemeOf = (location: string) => /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(location)?.[1]?.toLowerCase();
/** More links than this in a row is a loop, as the kernel's own limit (ELOOP) says. */
const MAX_LINK_HOPS = 40;

/**
 * The allowed folders, as real paths: PIFT_FILE_ROOTS when set (an empty value allows only the store below), else
 * `defaults`. The store of runs that name none is always allowed: the worker's own PIFT_STORE when it is a local
 * folder, else the default store directory (as workerDefaults resolves it). It is the operator's setting, not the
 * run's, and runs that name no store are written there.
 */
export function fileRootsFromEnv(env: NodeJS.ProcessEnv, defaults: readonly string[]): string[] {
  const listed = env[FILE_ROOTS_SETTING];
  const roots = listed === undefined ? [...defaults] : listed.split(path.delimiter).filter((r) => r.trim() !== '');
  // `||` as in workerDefaults: an empty PIFT_STORE means the default store.
  const store = localPathOf(env.PIFT_STORE || DEFAULT_STORE_DIR, 'PIFT_STORE');
  if (store !== undefined) roots.push(store);
  return [...new Set(roots.map((r) => physicalPath(r)))];
}

/**
 * The local path that a location names (`file://…` or a plain path), or undefined for a remote one (`s3://…`).
 * A `file://` URI that names no local path (another host, an encoded `/`) is bad input naming `field`.
 */
export function localPathOf(location: string, field: string): string | undefined {
  const scheme = schemeOf(location);
  if (scheme === undefined) return path.resolve(location);
  if (scheme !== 'file') return undefined;
  let local: string;
  try {
    local = fileURLToPath(location);
  } catch (err) {
    throw badUri(field, `${location} is not a local file URI: ${(err as Error).message}`);
  }
  return path.resolve(local);
}

/** Whether a location is remote, or local and inside one of `roots` once every link on the way is followed. */
export function isAllowedLocation(location: string, roots: readonly string[], field: string): boolean {
  const local = localPathOf(location, field);
  return local === undefined || roots.some((root) => isInside(physicalPath(local), root));
}

/**
 * Checks that a user-given location is remote, or local and inside one of `roots` once every link on the way is
 * followed. Returns the location unchanged so a call site can wrap what it opens: `openStore(allowedLocation(…))`.
 * The message names the field, the location as given and the worker setting; it never reads the file.
 */
export function allowedLocation(location: string, roots: readonly string[], field: string): string {
  if (isAllowedLocation(location, roots, field)) return location;
  const allowed = roots.length === 0 ? 'none' : roots.join(path.delimiter);
  throw settingError(
    field,
    `${field}: ${location} is outside the local folders this worker allows (${FILE_ROOTS_SETTING}=${allowed}); ` +
      `use a location under one of them, or a store URI such as s3://bucket/key`,
  );
}

function isInside(p: string, root: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/**
 * The path the kernel would reach, links followed. For a path that does not exist yet (a store about to be created)
 * the existing part is resolved and a dangling link on the way is followed by hand, so that a link cannot lead a
 * later write outside the allowed folders either.
 */
function physicalPath(p: string, hops = 0): string {
  const abs = path.resolve(p);
  try {
    return realpathSync.native(abs);
  } catch {
    // Some part is missing (or unreadable): resolve the part above and look at this entry ourselves.
  }
  const parent = path.dirname(abs);
  if (parent === abs) return abs;
  const here = path.join(physicalPath(parent, hops), path.basename(abs));
  let target: string;
  try {
    target = readlinkSync(here);
  } catch {
    return here; // not a link: a plain missing entry
  }
  if (hops >= MAX_LINK_HOPS) return here; // a loop can be opened by no one, so where it "points" does not matter
  return physicalPath(path.resolve(path.dirname(here), target), hops + 1);
}
