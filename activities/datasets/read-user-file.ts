import { basename } from 'node:path';
import { InvalidDataError } from '../../common/failures';
import { allowedLocation, NotFoundError, openObject, type ObjectStore } from '../../store';
import type { ActivityDeps } from '../deps';

/**
 * Opens a file the run's input names (dataset, benchmark, score file): only from the worker's allowed local folders or
 * a remote store; a missing one is bad input naming `field`. `source` is the file's name, for messages.
 */
export async function openUserFile<T>(
  deps: Pick<ActivityDeps, 'env' | 'fileRoots'>,
  uri: string,
  field: string,
  read: (store: ObjectStore, key: string) => Promise<T>,
): Promise<{ opened: T; source: string }> {
  const { store, key } = openObject(allowedLocation(uri, deps.fileRoots, field), deps.env, { setting: field });
  try {
    return { opened: await read(store, key), source: basename(key) };
  } catch (err) {
    if (err instanceof NotFoundError)
      throw new InvalidDataError(`${field}: ${uri} does not exist`, { field, file: uri });
    throw err;
  }
}
