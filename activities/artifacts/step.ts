import type { ObjectStore } from '../../store';
import { whileHeartbeating } from '../heartbeat';
import { sha256 } from './hashing';
import { commitManifest, finishedStep, type OutputEntry } from './manifest';
import { uploadDir } from './transfer';

/** Names a step's manifest and what it was computed from. */
export interface StepSpec {
  runId: string;
  /** The step's name in its manifest: 'score', 'train/stage-1', … */
  step: string;
  /** Where the manifest goes (from run-keys.ts). */
  key: string;
  inputsHash: string;
  /** The same inputs as earlier versions hashed them: a step they committed is reused, not refused. */
  earlierInputsHashes?: readonly string[];
}

/**
 * What a step writes, recorded as it is written (key, size, sha256), so the manifest that commits the step lists
 * exactly its outputs. Writes go straight to the store; nothing counts until `commit`.
 */
export class StepOutputs {
  private readonly written: OutputEntry[] = [];

  constructor(readonly store: ObjectStore) {}

  /** The outputs recorded so far, in the order they were written. */
  get entries(): readonly OutputEntry[] {
    return this.written;
  }

  async put(key: string, body: string | Uint8Array): Promise<OutputEntry> {
    await this.store.put(key, body);
    const bytes = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
    return this.record({ key, bytes, sha256: sha256(body) });
  }

  /** Uploads a file, hashing it as it is sent (one read). */
  async putFile(key: string, localPath: string): Promise<OutputEntry> {
    return this.record({ key, ...(await this.store.putFile(key, localPath)) });
  }

  /** Uploads a directory tree under `prefix`, one output per file (see uploadDir for `options`). */
  async putDir(localDir: string, prefix: string, options?: Parameters<typeof uploadDir>[3]): Promise<OutputEntry[]> {
    const entries = await uploadDir(this.store, localDir, prefix, options);
    for (const entry of entries) this.record(entry);
    return entries;
  }

  /** An output already in the store (a part committed by an earlier attempt). */
  record(entry: OutputEntry): OutputEntry {
    this.written.push(entry);
    return entry;
  }

  /** Commits every recorded output by writing the manifest, last. */
  async commit<R>(spec: StepSpec, result: R): Promise<void> {
    await commitManifest(this.store, spec.key, {
      runId: spec.runId,
      step: spec.step,
      inputsHash: spec.inputsHash,
      outputs: [...this.written],
      result,
    });
  }
}

/** A reused result says so where its type has a `reused` flag. */
function markReused<R>(result: R): R {
  if (result && typeof result === 'object' && !Array.isArray(result) && 'reused' in result) {
    return { ...result, reused: true };
  }
  return result;
}

/**
 * The one way a step finds its finished result or makes a new one. A step committed with the same inputs and with
 * every output intact is returned at once (marked reused); one committed from other inputs is refused (naming the
 * manifest and the fix). Otherwise `body` runs, writing its outputs through `out`, and the manifest listing them is
 * committed only after it returns: a step that throws leaves no manifest, so its next attempt runs again.
 *
 * With `heartbeat`, the activity heartbeats those details every few seconds while the body runs (see heartbeat.ts).
 */
export async function runStep<R>(
  store: ObjectStore,
  spec: StepSpec,
  body: (out: StepOutputs) => Promise<R>,
  options: { heartbeat?: () => unknown } = {},
): Promise<R> {
  const done = await finishedStep<R>(store, spec.key, spec.inputsHash, spec.earlierInputsHashes);
  if (done !== undefined) return markReused(done);
  const out = new StepOutputs(store);
  const run = () => body(out);
  const result = options.heartbeat ? await whileHeartbeating(options.heartbeat, run) : await run();
  await out.commit(spec, result);
  return result;
}
