import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openObject } from '../../store';
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
 * A local model directory must exist on the machine that loads it and hold a Hugging Face config. A path that does not
 * exist but reads like `org/name` is almost always a Hub id, which gets its own explanation.
 */
export function checkLocalModelDir(path: string, field: string): void {
  if (!existsSync(path)) {
    if (HUB_ID.test(path)) {
      throw new InvalidDataError(
        `${field}: "${path}" looks like a Hugging Face Hub model id; hub ids are not supported yet (workers never ` +
          `download). Download it once, e.g. \`hf download ${path} --local-dir /models/${path.split('/')[1]}\`, and ` +
          'pass that absolute directory, or upload the directory to the store and pass its s3:// URI',
        { field },
      );
    }
    throw new InvalidDataError(`${field}: model directory ${path} does not exist on this machine`, { field });
  }
  if (!statSync(path).isDirectory()) {
    throw new InvalidDataError(`${field}: ${path} is a file; give the directory that holds config.json`, { field });
  }
  if (!existsSync(join(path, 'config.json'))) {
    throw new InvalidDataError(`${field}: model directory ${path} holds no config.json`, { field });
  }
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
