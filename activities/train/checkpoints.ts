import { log } from '@temporalio/activity';
import type { ObjectStore } from '../../store';
import { outputsIntact, readManifest, type OutputEntry } from '../artifacts/manifest';
import { checkpointFolderOf, folderOfManifest, isCheckpointManifest, manifestIn } from '../artifacts/run-keys';
import { StepOutputs } from '../artifacts/step';
import { downloadVerified } from '../artifacts/transfer';
import { IntegrityError } from '../../store';

/** What a checkpoint's manifest records beyond the StepManifest fields. */
export interface CheckpointResult {
  step: number;
}

/** The manifest the first version wrote for a checkpoint; still read, so runs it started resume. */
interface LegacyCheckpointManifest {
  step: number;
  inputsHash: string;
  files: OutputEntry[];
}

/** A checkpoint manifest in either format, as (step, inputsHash, files). */
async function readCheckpoint(
  store: ObjectStore,
  key: string,
): Promise<{ step: number; inputsHash: string; outputs: OutputEntry[] } | null> {
  const m = await readManifest<CheckpointResult>(store, key);
  if (!m) return null;
  if (m.version === 1) return { step: m.result.step, inputsHash: m.inputsHash, outputs: m.outputs };
  const legacy = m as unknown as LegacyCheckpointManifest;
  return { step: legacy.step, inputsHash: legacy.inputsHash, outputs: legacy.files };
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
  await out.commit({ ...manifest, key: manifestIn(folder) }, { step: trainerStep } satisfies CheckpointResult);
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
  const manifests = (await store.list(`${prefix}/`)).filter(isCheckpointManifest).sort().reverse();
  const found: CommittedCheckpoint[] = [];
  for (const key of manifests) {
    const m = await readCheckpoint(store, key);
    if (!m || (m.inputsHash !== inputsHash && !earlierInputsHashes.includes(m.inputsHash))) continue;
    if (await outputsIntact(store, m.outputs))
      found.push({ step: m.step, key: folderOfManifest(key), outputs: m.outputs });
    else log.warn('skipping incomplete checkpoint', { key });
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
  const steps = [...new Set((await store.list(`${prefix}/`)).flatMap((k) => checkpointFolderOf(k) ?? []))].sort();
  const ours: string[] = [];
  const foreign: string[] = [];
  for (const s of steps) {
    const m = await readCheckpoint(store, manifestIn(`${prefix}/${s}`));
    if (!m) continue;
    (m.inputsHash === inputsHash ? ours : foreign).push(s);
  }
  // Checkpoints of another configuration can never be resumed from, and must not count towards `keep`; one of this
  // configuration hashed by an earlier version is superseded once a checkpoint of the current format is committed.
  const doomed = [...foreign, ...ours.slice(0, Math.max(0, ours.length - keep))];
  // Uploads cut short by a crash left folders with no manifest; those older than a committed one are garbage.
  const newest = ours[ours.length - 1];
  const partial = steps.filter((s) => !ours.includes(s) && !foreign.includes(s) && newest !== undefined && s < newest);
  for (const s of partial) await store.deletePrefix(`${prefix}/${s}/`);
  for (const s of doomed) {
    // Manifest first: a half-pruned checkpoint is then merely incomplete, never named by a manifest.
    await store.delete(manifestIn(`${prefix}/${s}`));
    await store.deletePrefix(`${prefix}/${s}/`);
  }
}
