import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Rows JSON.parse reads between two full collections (see dropInternedStrings): a million short ids would otherwise
 * keep about 30 MB, and under this many no collection is forced at all.
 */
export const ROWS_PER_COLLECTION = 1 << 17;

let collect: (() => void) | undefined;

/**
 * Runs a full garbage collection. JSON.parse internalizes every string value of up to 10 characters (V8's
 * json-parser), so each short id of a streamed dataset (`b123456`) enters V8's string table and old space, and only a
 * full collection lets them go; a streamed read makes mostly short-lived garbage, so none comes on its own before the
 * step ends and the worker's memory grows with the row count. `gc` is taken from one throwaway context with the flag
 * set only meanwhile, so no other context (the workflows' sandboxes included) ever sees it.
 */
export function dropInternedStrings(): void {
  if (!collect) {
    setFlagsFromString('--expose-gc');
    try {
      collect = runInNewContext('gc') as () => void;
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  }
  collect();
}
