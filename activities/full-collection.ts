import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Rows a streaming step handles between two forced collections (a streamed read), or at least in a phase before one
 * (segmentation): under it, what waits for a collection is a few MB and forcing one costs more time than it saves.
 */
export const ROWS_PER_COLLECTION = 1 << 16;

let collect: (() => void) | undefined;

/**
 * Runs a full garbage collection, for a step that streams millions of rows and would otherwise grow with their
 * number. Two kinds of garbage wait for one:
 * - JSON.parse internalizes every string value of up to 10 characters (V8's json-parser), so each short id of a
 *   streamed dataset (`b123456`) enters V8's string table and old space, which only a full collection cleans; a
 *   streamed read makes short-lived garbage only, so none comes on its own before the step ends.
 * - Typed arrays of a million rows that a phase let go live outside the heap, where V8 counts them late: freed only
 *   at a collection, they add up phase after phase.
 * `gc` is taken from one throwaway context with the flag set only meanwhile, so no other context (the workflows'
 * sandboxes included) ever sees it. A Node that refuses the flag after start-up gets no collection, not a failure:
 * memory then grows as it did before.
 */
export function fullCollection(): void {
  if (!collect) {
    try {
      setFlagsFromString('--expose-gc');
      const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
      collect = typeof gc === 'function' ? (gc as () => void) : () => {};
    } catch {
      collect = () => {};
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  }
  collect();
}
