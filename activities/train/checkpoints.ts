import { log } from '@temporalio/activity';
import { IntegrityError, type ObjectStore } from '../../store';
import { outputsIntact, readManifest, type OutputEntry } from '../artifacts/manifest';
import { checkpointFolderOf, manifestIn } from '../artifacts/run-keys';
import { StepOutputs } from '../artifacts/step';
import { downloadVerified } from '../artifacts/transfer';

/**
 * A checkpoint manifest as (step, inputsHash, outputs); null for none. The first version wrote `{step, inputsHash,
 * files}`: still read, so runs it started resume.
 */
async function readCheckpoint(store: ObjectStore, key: string) {
  const m = await readManifest<{ step: number }>(store, key);
  if (!m) return null;
  if (m.version === 1) return { step: m.result.step, inputsHash: m.inputsHash, outputs: m.outputs };
  const legacy = m as unknown as { step: number; inputsHash: string; files: OutputEntry[] };
  return { step: legacy.step, inputsHash: legacy.inputsHash, outputs: legacy.files };
}

/** Every `step-N` folder under `prefix`, oldest first, with its manifest if it has one. */
async function checkpointFolders(store: ObjectStore, prefix: string) {
  const names = [...new Set((await store.list(`${prefix}/`)).flatMap((k) => checkpointFolderOf(k) ?? []))].sort();
  const folders = [];
  for (const name of names) {
    const key = `${prefix}/${name}`;
    folders.push({ name, key, m: await readCheckpoint(store, manifestIn(key)) });
  }
  return folders;
}

/**
 * Uploads the trainer's checkpoint folder and commits it with a step manifest, last: a checkpoint without one is
 * never resumed from.
 */
export async function commitCheckpoint(
  store: ObjectStore,
  spec: { runId: string; step: string; inputsHash: string; folder: string },
  localDir: string,
  trainerStep: number,
  options: { skip?: (relativePath: string) => boolean } = {},
): Promise<OutputEntry[]> {
  const { folder, ...manifest } = spec;
  const out = new StepOutputs(store);
  const entries = await out.putDir(localDir, folder, options);
  await out.commit({ ...manifest, key: manifestIn(folder) }, { step: trainerStep });
  return entries;
}

/**
 * Files of the checkpoint at `max_steps` that no resume needs: with training finished, a resume only reloads the
 * weights (the trainer's finished-checkpoint path), so the optimizer state (twice the weights' size in fp32 Adam)
 * would be uploaded for nothing.
 */
export const optimizerStateFile = (relativePath: string) =>
  // optimizer.pt (one process), optimizer_0/… (FSDP's sharded state), …_optim_states.pt (DeepSpeed ZeRO)
  /^optimizer(\.pt|\.bin|_[^/]*(\/.*)?)$|(^|\/)[^/]*optim_states\.pt$/.test(relativePath);

/** A committed checkpoint of these inputs, with the files its manifest lists. */
export interface CommittedCheckpoint {
  step: number;
  /** Its folder in the store. */
  key: string;
  outputs: OutputEntry[];
}

/**
 * Committed checkpoints of these inputs (as hashed now or by an earlier version, `earlierInputsHashes`) whose files
 * are all there with their recorded sizes, newest first.
 */
export async function completeCheckpoints(
  store: ObjectStore,
  prefix: string,
  inputsHash: string,
  earlierInputsHashes: readonly string[] = [],
): Promise<CommittedCheckpoint[]> {
  const found: CommittedCheckpoint[] = [];
  for (const { key, m } of (await checkpointFolders(store, prefix)).reverse()) {
    if (!m || (m.inputsHash !== inputsHash && !earlierInputsHashes.includes(m.inputsHash))) continue;
    if (await outputsIntact(store, m.outputs)) found.push({ step: m.step, key, outputs: m.outputs });
    else log.warn('skipping incomplete checkpoint', { key: manifestIn(key) });
  }
  return found;
}

/**
 * Downloads the newest of `candidates` whose every file arrives with its recorded sha256 (verified as it streams
 * in) into `localDirOf(step)`; a damaged one is skipped with a warning for the next older one.
 */
export async function downloadNewestIntact(
  store: ObjectStore,
  candidates: readonly CommittedCheckpoint[],
  localDirOf: (step: number) => string,
): Promise<CommittedCheckpoint | undefined> {
  for (const c of candidates) {
    const files = c.outputs.filter((o) => o.key !== manifestIn(c.key));
    try {
      await downloadVerified(store, files, c.key, localDirOf(c.step));
      return c;
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      log.warn('skipping a damaged checkpoint for the next older one', { key: c.key, error: err.message });
    }
  }
  return undefined;
}

/** Keeps the newest `keep` committed checkpoints; the manifest goes first so no manifest ever names missing files. */
export async function pruneCheckpoints(
  store: ObjectStore,
  prefix: string,
  keep: number,
  inputsHash: string,
): Promise<void> {
  const folders = await checkpointFolders(store, prefix);
  const ours = folders.filter((f) => f.m?.inputsHash === inputsHash);
  // Checkpoints of another configuration can never be resumed from, and must not count towards `keep`; one of this
  // configuration hashed by an earlier version is superseded once a checkpoint of the current format is committed.
  const doomed = [
    ...folders.filter((f) => f.m && f.m.inputsHash !== inputsHash),
    ...ours.slice(0, Math.max(0, ours.length - keep)),
  ];
  // Uploads cut short by a crash left folders with no manifest; those older than a committed one are garbage.
  const newest = ours.at(-1)?.name;
  const partial = folders.filter((f) => !f.m && newest !== undefined && f.name < newest);
  for (const { key } of partial) await store.deletePrefix(`${key}/`);
  for (const { key } of doomed) {
    // Manifest first: a half-pruned checkpoint is then merely incomplete, never named by a manifest.
    await store.delete(manifestIn(key));
    await store.deletePrefix(`${key}/`);
  }
}
