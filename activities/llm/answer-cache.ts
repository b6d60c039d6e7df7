import type { ObjectStore } from '../../store';
import { hashInputs } from '../artifacts/hashing';

/**
 * Answers already bought, kept in the store outside every run's prefix and found by what was asked (model, prompt
 * version, decoding, the hash of the text asked about): a re-run under a new run id, or a dataset overlapping an
 * earlier one, pays only for what is new. Only answers that parsed are kept; an unreadable entry is a miss.
 *
 * The online steps write entries without a flush to disk (`durable` false): every answer such a step uses is also in
 * its own committed parts, so an entry lost to a machine crash costs one request again, while flushing each of
 * hundreds of answers a second costs the one event loop that asks for them. The Batch API steps hand their answers to
 * the online step through the cache, so theirs are flushed. A lookup is one read (one request on S3), not an
 * existence check and a read.
 *
 *   .pift-cache/<kind>/<sha256[0..2]>/<sha256>.json
 */
export interface AnswerCache {
  /** The entry of `material`, which is not to change after: its key is kept for the `put` that follows a miss. */
  get<T>(material: unknown): Promise<T | undefined>;
  /** Starts writing an entry; the row that bought it does not wait for the write. */
  put(material: unknown, value: unknown): void;
  /** Waits for every write started, failing with the first that failed: a step calls it before it commits. */
  flush(): Promise<void>;
}

export const CACHE_PREFIX = '.pift-cache';

export const cacheKey = (kind: string, material: unknown): string => {
  const hash = hashInputs(material);
  return `${CACHE_PREFIX}/${kind}/${hash.slice(0, 2)}/${hash}.json`;
};

const off: AnswerCache = { get: async () => undefined, put: () => {}, flush: async () => {} };

export function answerCache(
  store: ObjectStore,
  kind: 'score' | 'judge',
  enabled: boolean,
  durable = false,
): AnswerCache {
  if (!enabled) return off;
  const writing = new Set<Promise<void>>();
  let failed: { error: unknown } | undefined;
  // The key of a material looked up, for the write that follows a miss: hashed once per answer, not twice.
  const keys = new WeakMap<object, string>();
  const keyOf = (material: unknown): string => {
    if (typeof material !== 'object' || material === null) return cacheKey(kind, material);
    let key = keys.get(material);
    if (key === undefined) {
      key = cacheKey(kind, material);
      keys.set(material, key);
    }
    return key;
  };
  return {
    async get<T>(material: unknown) {
      const text = await store.findText(keyOf(material));
      if (text === undefined) return undefined;
      try {
        return JSON.parse(text) as T;
      } catch {
        return undefined;
      }
    },
    put(material: unknown, value: unknown) {
      const written = () => void writing.delete(write);
      const write = store.put(keyOf(material), JSON.stringify(value), { durable }).then(written, (error: unknown) => {
        failed ??= { error };
        written();
      });
      writing.add(write);
    },
    async flush() {
      await Promise.all(writing);
      if (failed) throw failed.error;
    },
  };
}
