import { randomBytes } from 'node:crypto';
import type { ObjectStore } from '../../store';
import { hashInputs } from '../artifacts/hashing';

/**
 * Answers already bought, kept in the store outside every run's prefix and found by what was asked (model, prompt
 * version, decoding, the hash of the text asked about): a re-run under a new run id, or a dataset overlapping an
 * earlier one, pays only for what is new. Only answers that parsed are kept; an unreadable entry is a miss.
 *
 * Entries are written many at a time, as one log object of up to LOG_ENTRIES lines `{"k": <sha256>, "v": <value>}`:
 * one write (one request on S3, one flushed file locally) per batch instead of an object per answer, whose write cost
 * the one event loop that asks for hundreds of answers a second more than the requests themselves. The online steps
 * write theirs without a flush to disk (`durable` false): every answer such a step uses is also in its own committed
 * parts, so a log lost to a machine crash costs its requests again. The Batch API steps hand their answers to the
 * online step through the cache, so theirs are flushed.
 *
 * The cache's folder is listed once, on the first lookup of a step: its logs are read into a map of what they hold,
 * and the entries of earlier versions, one object each, are still found, read only when the listing holds one (a
 * lookup that misses costs no read, which on the one event loop cost each row a trip to the thread pool):
 *
 *   .pift-cache/<kind>/log/<time>-<random>.jsonl         this version
 *   .pift-cache/<kind>/<sha256[0..2]>/<sha256>.json       earlier versions
 */
export interface AnswerCache {
  /** The entry of `material`, which is not to change after: its key is kept for the `put` that follows a miss. */
  get<T>(material: unknown): Promise<T | undefined>;
  /** Adds an entry; the row that bought it does not wait for its log to be written. */
  put(material: unknown, value: unknown): void;
  /** Writes what is left and waits for every write, failing with the first that failed: called before a commit. */
  flush(): Promise<void>;
}

export const CACHE_PREFIX = '.pift-cache';

/** Where an earlier version kept the entry of `material` (of its hash), one object per answer. */
const objectKey = (kind: string, hash: string) => `${CACHE_PREFIX}/${kind}/${hash.slice(0, 2)}/${hash}.json`;
export const cacheKey = (kind: string, material: unknown): string => objectKey(kind, hashInputs(material));

const logFolder = (kind: string) => `${CACHE_PREFIX}/${kind}/log`;

/** Entries per log object: a few hundred KB, written every few seconds at full speed. */
const LOG_ENTRIES = 2000;

/** A log's name: unique across processes and attempts, sorted by time. */
const logKey = (kind: string) =>
  `${logFolder(kind)}/${Date.now().toString(36).padStart(9, '0')}-${randomBytes(6).toString('hex')}.jsonl`;

const off: AnswerCache = { get: async () => undefined, put: () => {}, flush: async () => {} };

/** What the cache's folder holds, listed once. */
interface Entries {
  /** Every entry the logs hold, by hash (as JSON text: parsed on a hit only). Torn or foreign lines are skipped. */
  logged: Map<string, string>;
  /** The hashes of the entries an earlier version kept one object each. */
  earlier: Set<string>;
}

async function readEntries(store: ObjectStore, kind: string): Promise<Entries> {
  const entries: Entries = { logged: new Map(), earlier: new Set() };
  const logs = `${logFolder(kind)}/`;
  for (const key of await store.list(`${CACHE_PREFIX}/${kind}`)) {
    if (!key.startsWith(logs)) {
      entries.earlier.add(key.slice(key.lastIndexOf('/') + 1, -'.json'.length));
      continue;
    }
    for (const line of (await store.getText(key)).split('\n')) {
      // '{"k":"<64 hex>","v":' then the value and '}'.
      if (line.length < 78 || !line.startsWith('{"k":"') || !line.endsWith('}')) continue;
      entries.logged.set(line.slice(6, 70), line.slice(76, -1));
    }
  }
  return entries;
}

export function answerCache(
  store: ObjectStore,
  kind: 'score' | 'judge',
  enabled: boolean,
  durable = false,
): AnswerCache {
  if (!enabled) return off;
  const writing = new Set<Promise<void>>();
  let failed: { error: unknown } | undefined;
  let pending: string[] = [];
  let listed: Promise<Entries> | undefined;
  // The hash of a material looked up, for the write that follows a miss: hashed once per answer, not twice.
  const hashes = new WeakMap<object, string>();
  const hashOf = (material: unknown): string => {
    if (typeof material !== 'object' || material === null) return hashInputs(material);
    let hash = hashes.get(material);
    if (hash === undefined) {
      hash = hashInputs(material);
      hashes.set(material, hash);
    }
    return hash;
  };
  const parsed = <T>(text: string | undefined): T | undefined => {
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as T;
    } catch {
      return undefined;
    }
  };
  const writeLog = () => {
    if (pending.length === 0) return;
    const body = pending.join('');
    pending = [];
    const done = () => void writing.delete(write);
    const write = store.put(logKey(kind), body, { durable }).then(done, (error: unknown) => {
      failed ??= { error };
      done();
    });
    writing.add(write);
  };
  return {
    async get<T>(material: unknown) {
      const hash = hashOf(material);
      listed ??= readEntries(store, kind);
      const { logged, earlier } = await listed;
      return parsed<T>(
        logged.get(hash) ?? (earlier.has(hash) ? await store.findText(objectKey(kind, hash)) : undefined),
      );
    },
    put(material: unknown, value: unknown) {
      pending.push(`{"k":"${hashOf(material)}","v":${JSON.stringify(value)}}\n`);
      if (pending.length >= LOG_ENTRIES) writeLog();
    },
    async flush() {
      writeLog();
      await Promise.all(writing);
      if (failed) throw failed.error;
    },
  };
}
