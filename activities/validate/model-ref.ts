import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openObject } from '../../store';
import { allowedLocation, isAllowedLocation } from '../../store/file-roots';
import { InvalidDataError } from '../../common/failures';

/** Models the trainer builds from a config in the repo (trainer/configs), with no download. */
export const BUILTIN_MODELS = ['builtin:tiny-llama'];

/** Where a model's weights come from: built in, a directory of the machine that loads it, or a store folder. */
export type ModelRef =
  { kind: 'builtin'; name: string } | { kind: 'local'; path: string } | { kind: 'store'; uri: string };

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
const STORE_SCHEMES = ['file', 's3'];
/** `org/name` as the Hugging Face Hub spells model ids. */
const HUB_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Sorts a model setting into its kind without any I/O; refuses unknown builtins and unsupported schemes. */
export function parseModelRef(value: string, field: string): ModelRef {
  if (value.startsWith('builtin:')) {
    if (!BUILTIN_MODELS.includes(value)) {
      throw new InvalidDataError(`${field}: unknown builtin model "${value}"; known: ${BUILTIN_MODELS.join(', ')}`, {
        field,
      });
    }
    return { kind: 'builtin', name: value };
  }
  const scheme = SCHEME.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'local', path: value };
  if (!STORE_SCHEMES.includes(scheme)) {
    throw new InvalidDataError(
      `${field}: unsupported URI scheme "${scheme}://" in ${JSON.stringify(value)}; use a local directory, file:///abs/dir or s3://bucket/prefix`,
      { field },
    );
  }
  return { kind: 'store', uri: value.replace(/\/+$/, '') };
}

/**
 * Refuses a model outside the allowed folders before this machine looks at it, so that no later message (missing,
 * a file, no config) tells anything about a path outside them. Builtin and remote models pass.
 */
export function allowedModel(ref: ModelRef, roots: readonly string[], field: string): void {
  if (ref.kind === 'builtin') return;
  if (ref.kind === 'store') {
    allowedLocation(ref.uri, roots, field);
    return;
  }
  // `org/name` that names no directory under the allowed folders is almost always a Hub id. Only a directory under
  // them is looked for, so the answer says nothing about what exists outside them.
  if (HUB_ID.test(ref.path) && !(isAllowedLocation(ref.path, roots, field) && existsSync(resolve(ref.path)))) {
    throw new InvalidDataError(
      `${field}: "${ref.path}" looks like a Hugging Face Hub model id; hub ids are not supported yet (workers never ` +
        `download). Download it once, e.g. \`hf download ${ref.path} --local-dir /models/${ref.path.split('/')[1]}\`, ` +
        "and pass that absolute directory (under the worker's PIFT_FILE_ROOTS), or upload the directory to the " +
        'store and pass its s3:// URI',
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
    throw new InvalidDataError(`${field}: model directory ${dir} does not exist on this machine`, { field });
  }
  if (!statSync(dir).isDirectory()) {
    throw new InvalidDataError(`${field}: ${dir} is a file; give the directory that holds config.json`, { field });
  }
  if (!existsSync(join(dir, 'config.json'))) {
    throw new InvalidDataError(`${field}: model directory ${dir} holds no config.json`, { field });
  }
  return dir;
}

/** A model stored as a folder of objects must have its config among them. */
export async function checkStoredModel(uri: string, field: string, env: NodeJS.ProcessEnv): Promise<number> {
  const { store, key } = openModelFolder(uri, field, env);
  const keys = await store.list(`${key}/`);
  if (keys.length === 0) throw new InvalidDataError(`${field}: no model files under ${uri}`, { field });
  if (!keys.includes(`${key}/config.json`)) {
    throw new InvalidDataError(`${field}: the model folder ${uri} holds no config.json`, { field });
  }
  return keys.length;
}

export function openModelFolder(uri: string, field: string, env: NodeJS.ProcessEnv) {
  return openObject(uri.replace(/\/+$/, ''), env, { setting: field });
}
