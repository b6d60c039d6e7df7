import { log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import pLimit from 'p-limit';
import { badSetting, FailureType } from '../../common/failures';
import type { ActivityDeps } from '../deps';
import {
  allowedLocation,
  IntegrityError,
  NotFoundError,
  openObject,
  openStore,
  storeDefaults,
  type ObjectStore,
} from '../../store';
import { schemeOf } from '../../store/file-roots';
import { hashInputs, sha256File } from './hashing';
import { outputsVerified, readManifest, type OutputEntry, type StepManifest } from './manifest';
import { downloadPrefix, downloadVerified, localPathUnder } from './transfer';

/**
 * What one step reads from another: an object or a folder (`key`) that the producing step's manifest
 * (`manifestKey`, in the same `store`) lists with the size and sha256 of every file.
 */
export interface HandOff {
  store: ObjectStore;
  manifestKey: string;
  key: string;
}

/** What a hand-off failure names, for the workflow to recompute the producer (workflows/recompute-producer.ts). */
export interface DamagedHandOff {
  /** The producing step, by run id and its name in its manifest: '<runId>/train/stage-1', '<runId>/segment', … */
  producer: string;
  uri: string;
}

/**
 * The producer's committed bytes are gone or damaged, here and in every copy this worker holds: retrying this step
 * cannot help, running the producer again can (it verifies its outputs when reused and recomputes damaged ones).
 */
function damaged(
  manifest: Pick<StepManifest<unknown>, 'runId' | 'step'>,
  uri: string,
  why: string,
): ApplicationFailure {
  return ApplicationFailure.create({
    message: `${uri}: ${why}; the step that wrote it (${manifest.step}) is computed again`,
    type: FailureType.CorruptArtifact,
    nonRetryable: true,
    details: [{ producer: `${manifest.runId}/${manifest.step}`, uri } satisfies DamagedHandOff],
  });
}

const MANIFEST = 'manifest.json';
/** How far above an object its producer's manifest may be: `train/<name>/final/<file>` is the deepest. */
const MANIFEST_LEVELS = 3;

/**
 * The hand-off a store URI names, when a step of ours committed it: the nearest `manifest.json` above it that lists
 * it (a file, or every file of a folder). Undefined for what no manifest of ours covers (a dataset or a model a user
 * uploaded, a local path).
 */
export async function handOffAt(uri: string, env: NodeJS.ProcessEnv): Promise<HandOff | undefined> {
  const target = uri.replace(/\/+$/, '');
  if (!schemeOf(target)) return undefined;
  let folder = target;
  for (let level = 0; level < MANIFEST_LEVELS && folder.includes('/'); level++) {
    folder = folder.slice(0, folder.lastIndexOf('/'));
    if (!schemeOf(folder) || folder.endsWith('/')) return undefined;
    const { store: holder, key } = openObject(`${folder}/${MANIFEST}`, env);
    const manifest = await readManifest<unknown>(holder, key).catch(() => null);
    const stepFolder = manifest && stepFolderOf(folder, manifest);
    if (!stepFolder) continue;
    // Keys are relative to the store the manifest was written to: the folder's URI ends with the step's folder.
    const root = folder.slice(0, folder.length - stepFolder.length - 1);
    const wanted = `${stepFolder}${target.slice(folder.length)}`;
    if (entriesOf(manifest.outputs, wanted).length === 0) continue;
    return { store: openStore(root, env), manifestKey: `${stepFolder}/${MANIFEST}`, key: wanted };
  }
  return undefined;
}

/** The key of `folder` in the manifest's store: the shortest tail of it that starts with the run id and holds outputs. */
function stepFolderOf(folder: string, manifest: StepManifest<unknown>): string | undefined {
  const parts = folder.split('/');
  for (let i = parts.length - 1; i > 0; i--) {
    if (parts[i] !== manifest.runId) continue;
    const tail = parts.slice(i).join('/');
    if (manifest.outputs?.some((o) => o.key.startsWith(`${tail}/`))) return tail;
  }
  return undefined;
}

/** The entries a manifest lists for `key`: the object itself, or every file below the folder `key`. */
const entriesOf = (outputs: readonly OutputEntry[] | undefined, key: string) =>
  (outputs ?? []).filter((o) => o.key === key || o.key.startsWith(`${key}/`));

/** The producer's manifest and its entries for the hand-off; a manifest or entry that is gone is damage too. */
async function committed(h: HandOff): Promise<{ manifest: StepManifest<unknown>; entries: OutputEntry[] }> {
  const manifest = await readManifest<unknown>(h.store, h.manifestKey);
  if (!manifest) {
    // Named as it would name itself: the manifest sits in <runId>/<step>/.
    const [runId, ...step] = h.manifestKey.split('/').slice(0, -1);
    const gone = `its step's manifest ${h.manifestKey} is gone`;
    throw damaged({ runId, step: step.join('/') }, h.store.uriFor(h.key), gone);
  }
  const entries = entriesOf(manifest.outputs, h.key);
  if (entries.length === 0) throw damaged(manifest, h.store.uriFor(h.key), `not listed by ${h.manifestKey}`);
  return { manifest, entries };
}

/**
 * The one way a step reads what another step committed: downloads the hand-off (a file to `local`, or a folder into
 * it), every file checked as it streams in against the size and sha256 the producer's manifest recorded (`known`).
 * @throws a non-retryable CorruptArtifact failure naming the producer (DamagedHandOff) when the bytes are not those.
 */
async function receive(h: HandOff, local: string, known?: Awaited<ReturnType<typeof committed>>): Promise<void> {
  const { manifest, entries } = known ?? (await committed(h));
  try {
    await downloadVerified(h.store, entries, h.key, local);
  } catch (err) {
    if (err instanceof IntegrityError || err instanceof NotFoundError)
      throw damaged(manifest, h.store.uriFor(h.key), err.message);
    throw err;
  }
}

/** Where models live on this worker between activities, each under the hash of its files. */
const modelCacheDir = (workDir: string) => join(workDir, 'models');
/** Models kept in the cache: the one just trained and the one before, enough for stage k+1 and generation. */
const MODEL_CACHE_KEEP = 3;

/** One name for a folder of files: its relative paths and their sha256. */
export const treeHash = (entries: readonly OutputEntry[], prefix: string): string =>
  hashInputs(entries.map((e) => [e.key.slice(prefix.length + 1), e.sha256]).sort());

/** The cached copy of a model, when every file is still there with its recorded sha256 (read locally, once). */
async function cachedModel(dir: string, h: HandOff, entries: readonly OutputEntry[]): Promise<boolean> {
  if (!existsSync(dir)) return false;
  for (const e of entries) {
    const file = localPathUnder(h.key, e.key, dir);
    if (!existsSync(file) || (await sha256File(file)) !== e.sha256) {
      log.warn('the cached copy of a model is damaged; it is fetched again', { uri: h.store.uriFor(h.key) });
      await rm(dir, { recursive: true, force: true });
      return false;
    }
  }
  await utimes(dir, new Date(), new Date()); // most recently used: the last to be evicted
  return true;
}

/**
 * The stored copy of a model held intact in this worker's cache: each file the store no longer has as committed is
 * uploaded again from the cache (the producer's manifest stays valid, since the bytes are those it lists).
 */
async function repairFromCache(h: HandOff, entries: readonly OutputEntry[], dir: string): Promise<void> {
  const limit = pLimit(storeDefaults.filesInFlight);
  await Promise.all(
    entries.map((e) =>
      limit(async () => {
        if (await outputsVerified(h.store, [e])) return;
        log.warn('a stored model file is damaged; using the intact copy on this worker and storing it again', {
          uri: h.store.uriFor(e.key),
        });
        const written = await h.store.putFile(e.key, localPathUnder(h.key, e.key, dir));
        if (written.sha256 !== e.sha256) throw new Error(`${h.store.uriFor(e.key)} changed while it was repaired`);
      }),
    ),
  );
}

/**
 * A model another step committed, as a local folder: this worker's cached copy (under the hash of its files) when it
 * is intact, else downloaded and verified into the cache. With a cached copy nothing is downloaded, but the stored
 * copy is read once to check it, and repaired from the cache when damaged.
 * @throws as `receive` when neither copy is intact.
 */
export async function receiveModel(h: HandOff, workDir: string | undefined, localDir: string): Promise<string> {
  const known = await committed(h);
  const { entries } = known;
  if (!workDir) {
    await receive(h, localDir, known);
    return localDir;
  }
  const dir = join(modelCacheDir(workDir), treeHash(entries, h.key));
  if (await cachedModel(dir, h, entries)) {
    await repairFromCache(h, entries, dir);
    return dir;
  }
  const incomplete = `${dir}.incomplete`;
  await rm(incomplete, { recursive: true, force: true });
  await receive(h, incomplete, known);
  return keepModel(workDir, incomplete, entries, h.key);
}

/**
 * Keeps a model this worker just produced (and committed as `entries` under `prefix`), so that the next stage or
 * generation on this worker uses it instead of downloading it again: moves `localDir` to its place in the cache, as
 * the most recently used, evicts the oldest, and returns that place.
 */
export async function keepModel(workDir: string, localDir: string, entries: readonly OutputEntry[], prefix: string) {
  const cache = modelCacheDir(workDir);
  const dir = join(cache, treeHash(entries, prefix));
  await mkdir(cache, { recursive: true });
  await rm(dir, { recursive: true, force: true });
  await rename(localDir, dir);
  await utimes(dir, new Date(), new Date());
  const dirs = await Promise.all(
    (await readdir(cache, { withFileTypes: true }))
      .filter((d) => d.isDirectory() && !d.name.includes('.'))
      .map(async (d) => ({ path: join(cache, d.name), mtime: (await stat(join(cache, d.name))).mtimeMs })),
  );
  dirs.sort((a, b) => b.mtime - a.mtime);
  for (const d of dirs.slice(MODEL_CACHE_KEEP)) await rm(d.path, { recursive: true, force: true });
  return dir;
}

/**
 * A local path for a model to load: builtin names pass through, local directories (only under the worker's allowed
 * folders) are used in place, store URIs (a folder, with or without a trailing '/') are downloaded into `localDir`.
 * A model a step of ours committed is a hand-off (see receiveModel). A model that is not there is bad input, not a
 * transient fault.
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
  if (!schemeOf(model)) {
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

/**
 * The file at `uri` that a step reads: `receive` when a step of ours committed it; otherwise (a file a user gave, or
 * a store an earlier run's manifest no longer covers) downloaded and checked against `sha256` when one is known.
 */
export async function receiveFile(
  uri: string,
  env: NodeJS.ProcessEnv,
  localPath: string,
  expect: { sha256?: string; setting: string },
): Promise<void> {
  const handOff = await handOffAt(uri, env);
  if (handOff) return receive(handOff, localPath);
  const { store, key } = openObject(uri, env, { setting: expect.setting });
  try {
    await store.getFile(key, localPath, expect.sha256 ? { sha256: expect.sha256 } : undefined);
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    throw ApplicationFailure.nonRetryable(
      `${expect.setting}: ${err.message}. The step that wrote it checks its outputs' sha256 when it is reused, so ` +
        '`pift resume` recomputes it',
      FailureType.CorruptArtifact,
    );
  }
}
