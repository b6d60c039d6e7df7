import { sha256Of } from './hashing';
import { InvalidDataError } from '../../common/failures';
import type { ObjectStore } from '../../store';

export interface OutputEntry {
  key: string;
  bytes: number;
  sha256: string;
}

/** Committed last by every step: its presence means every listed output was completely written. */
export interface StepManifest<R> {
  version: 1;
  runId: string;
  step: string;
  inputsHash: string;
  createdAt: string;
  outputs: OutputEntry[];
  result: R;
}

/** A JSON object of ours, undefined when it is absent. */
export async function readJson<T>(store: ObjectStore, key: string): Promise<T | undefined> {
  return (await store.exists(key)) ? (JSON.parse(await store.getText(key)) as T) : undefined;
}

export async function readManifest<R>(store: ObjectStore, key: string): Promise<StepManifest<R> | null> {
  return (await readJson<StepManifest<R>>(store, key)) ?? null;
}

/** Every output still present with its recorded size: a cheap first check (see outputsVerified). */
export async function outputsIntact(store: ObjectStore, outputs: OutputEntry[]): Promise<boolean> {
  for (const out of outputs) {
    const head = await store.head(out.key);
    if (!head || head.size !== out.bytes) return false;
  }
  return true;
}

/**
 * Every output still present with the bytes it was committed with: sizes first (cheap), then each object's sha256,
 * hashed as it streams from the store. An entry with no recorded sha256 is checked by size only.
 */
export async function outputsVerified(store: ObjectStore, outputs: OutputEntry[]): Promise<boolean> {
  if (!(await outputsIntact(store, outputs))) return false;
  for (const out of outputs) {
    if (out.sha256 && (await sha256Of(await store.getStream(out.key))) !== out.sha256) return false;
  }
  return true;
}

/**
 * The result of a finished step with the same inputs, or undefined when the step must run.
 * A finished step with *different* inputs is refused: silently mixing two configurations under one run id
 * would make its results meaningless. `earlierInputsHashes` are the same inputs as an earlier version hashed them,
 * so a run started before a hash format changed still finds its finished steps.
 */
export async function finishedStep<R>(
  store: ObjectStore,
  key: string,
  inputsHash: string,
  earlierInputsHashes: readonly string[] = [],
): Promise<R | undefined> {
  const manifest = await readManifest<R>(store, key);
  if (!manifest) return undefined;
  if (manifest.inputsHash !== inputsHash && !earlierInputsHashes.includes(manifest.inputsHash)) {
    throw new InvalidDataError(
      `${store.uriFor(key)} was produced from different inputs (dataset, settings or upstream results changed); ` +
        `start a new run id, or delete ${store.uriFor(key)} to recompute this step`,
      { field: 'runId' },
    );
  }
  // Damaged bytes are never handed on: the step runs again and writes them afresh (steps are deterministic, so what
  // was built on the old bytes stays valid). Reading every output back costs one pass over them, only on reuse.
  if (!(await outputsVerified(store, manifest.outputs))) return undefined;
  return manifest.result;
}

export async function commitManifest<R>(
  store: ObjectStore,
  key: string,
  m: Omit<StepManifest<R>, 'version' | 'createdAt'>,
): Promise<void> {
  const manifest: StepManifest<R> = { version: 1, createdAt: new Date().toISOString(), ...m };
  await store.put(key, JSON.stringify(manifest, null, 2));
}
