import { basename } from 'node:path';
import { InvalidDataError } from '../../common/failures';
import { allowedLocation, NotFoundError, openObject } from '../../store';
import type { ActivityDeps } from '../deps';
import { decodeUserFile } from './decode';

/**
 * Reads a file the run's input names (dataset, benchmark) as text: only from the worker's allowed local folders or a
 * remote store, gzip unpacked, UTF-8 checked. `source` is the file's name, for messages.
 */
export async function readUserFile(
  deps: Pick<ActivityDeps, 'env' | 'fileRoots'>,
  uri: string,
  field: string,
): Promise<{ text: string; source: string }> {
  const { store, key } = openObject(allowedLocation(uri, deps.fileRoots, field), deps.env, { setting: field });
  const source = basename(key);
  let bytes: Buffer;
  try {
    bytes = await store.get(key);
  } catch (err) {
    if (err instanceof NotFoundError)
      throw new InvalidDataError(`${field}: ${uri} does not exist`, { field, file: uri });
    throw err;
  }
  return { text: await decodeUserFile(bytes, source), source };
}
