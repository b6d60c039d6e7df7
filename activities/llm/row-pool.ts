/**
 * One pool of in-flight requests for a whole step. Work comes in parts (100 scored rows, one (model, benchmark)
 * file of judgments) read lazily from an async iterable; every item of every open part shares the same
 * `concurrency` slots, so the pipe never drains while one part waits for its slowest row. Each part is stored as soon
 * as all its items are answered (a retried activity loads it instead of asking again) and handed on in order, so the
 * step's output is the same bytes as when parts ran one after another.
 *
 * Items are pulled from their part one at a time, only when a slot is free, and dropped as soon as they are answered:
 * a part keeps its answers until it is stored, never its items. Parts of 1,000 rows (a million-row step) that held
 * their rows until the last was answered kept them alive across several young-generation collections, which promoted
 * them, so the old generation grew with the dataset (garbage included) until a full collection.
 */
import type { ObjectStore } from '../../store';
import { fromJsonl } from '../artifacts/jsonl';

export interface PoolPart<T> {
  index: number;
  /** Pulled one item at a time as slots free up (see inParts): a part's items are never all held at once. */
  items: Iterable<T> | AsyncIterable<T>;
}

/** A part as the callbacks see it: by its number, as its items are gone by the time it is answered. */
export interface PartRef {
  index: number;
}

export interface PoolOptions<T, R> {
  parts: AsyncIterable<PoolPart<T>>;
  /** Items in flight at most. */
  concurrency: number;
  /**
   * The part's results stored by an earlier attempt, or undefined: then its items are asked. The caller checks the
   * stored part against the number of items it expects there (the items are only counted as they stream past).
   */
  load: (part: PartRef) => Promise<R[] | undefined>;
  work: (item: T, part: PartRef) => Promise<R>;
  /** Stores a finished part (before it is handed on, and whatever the order parts finish in). */
  save: (part: PartRef, results: R[]) => Promise<void>;
  /** Called once per part, in part order. */
  emit: (part: PartRef, results: R[]) => Promise<void> | void;
}

/** A part an earlier attempt stored, when it holds all of its `rows` results (else it is asked again). */
export async function storedPart<R>(store: ObjectStore, key: string, rows: number): Promise<R[] | undefined> {
  if (!(await store.exists(key))) return undefined;
  const stored = fromJsonl<R>(await store.getText(key));
  return stored.length === rows ? stored : undefined;
}

export async function runPool<T, R>(o: PoolOptions<T, R>): Promise<void> {
  // Answers of the parts started but not yet handed on, at most (the two oldest parts always go on, so the next is fed
  // while one finishes): bounds memory while one slow item holds the oldest part back. Eight parts of 100 at up to 200
  // concurrent items, as when this counted parts.
  const maxOpenItems = 400 * Math.max(2, Math.ceil(o.concurrency / 100));
  /** The parts not handed on yet, oldest first; `results` once stored (or loaded), ready to be handed on. */
  const open: Array<{ ref: PartRef; items: number; results?: R[] }> = [];
  let openItems = 0;
  let running = 0;
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown) => void (failure ??= { error });
  // Only the feeder waits; it checks what it waits for before each wait, so a change while it was busy is not lost.
  let wake = () => {};
  /** Hands finished parts on until `ready()`; throws the pool's first failure. */
  const until = async (ready: () => boolean) => {
    for (;;) {
      while (!failure && open[0]?.results) {
        const { ref, items, results } = open.shift()!;
        openItems -= items;
        await o.emit(ref, results!);
      }
      if (failure) throw failure.error;
      if (ready()) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  // The newest open part may take another item while a slot is free, and while it is one of the two oldest parts or
  // the open parts' answers stay under the bound.
  const mayStart = () => running < o.concurrency && (open.length <= 2 || openItems < maxOpenItems);

  try {
    for await (const part of o.parts) {
      await until(() => open.length < 2 || openItems < maxOpenItems);
      const entry: (typeof open)[number] = { ref: { index: part.index }, items: 0 };
      open.push(entry);
      const stored = await o.load(entry.ref);
      if (stored) {
        // Its items are passed over (a stream of rows must still be read past them) and never asked.
        for await (const _ of part.items) entry.items += 1;
        openItems += entry.items;
        entry.results = stored;
        continue;
      }
      const results: R[] = [];
      // The part's items in flight, plus one while it is fed: it is stored when none is left, whatever the order parts
      // finish in (none after a failure). Counted, not listed, so the part holds nothing per item but its answer.
      let left = 1;
      const settled = () => {
        if (--left || failure) return;
        o.save(entry.ref, results)
          .then(() => void (entry.results = results), fail)
          .finally(() => wake());
      };
      for await (const item of part.items) {
        await until(mayStart);
        running += 1;
        openItems += 1;
        left += 1;
        const position = entry.items++;
        // `item` is let go once `work` settles. A failure is recorded before the slot is given back, so the feeder
        // sees it before it pulls another item.
        void (async () => void (results[position] = await o.work(item, entry.ref)))()
          .catch(fail)
          .finally(() => {
            running -= 1;
            settled();
            wake();
          });
      }
      settled();
    }
    await until(() => open.length === 0);
  } catch (error) {
    // Also when reading the parts or handing one on failed: no part answered later is stored.
    fail(error);
    throw error;
  }
}

/**
 * Rows in parts of `size`, numbered from `first`. Each part's rows are pulled from `rows` only as the pool asks for
 * them, one at a time; the next part starts where the last one's rows ended (rows a consumer left unread are skipped).
 */
export async function* inParts<T>(
  rows: AsyncIterable<T> | Iterable<T>,
  size: number,
  first = 0,
): AsyncGenerator<PoolPart<T>> {
  const source: AsyncIterator<T> | Iterator<T> =
    Symbol.asyncIterator in rows ? rows[Symbol.asyncIterator]() : rows[Symbol.iterator]();
  let ended = false;
  // The row read to make the current part, until its first item is pulled.
  let head: IteratorResult<T> | undefined;
  const next = async (): Promise<IteratorResult<T>> => {
    const got = head ?? (ended ? { done: true, value: undefined } : await source.next());
    head = undefined;
    ended ||= !!got.done;
    return got;
  };
  try {
    for (let index = first; ; index++) {
      // A part is only made when it has a row: no empty part after a last full one.
      head = await next();
      if (head.done) return;
      let taken = 0;
      const items = async function* () {
        for (let got; taken < size && !(got = await next()).done;) {
          taken += 1;
          yield got.value;
        }
      };
      yield { index, items: { [Symbol.asyncIterator]: items } };
      // Rows the consumer left unread are skipped, the one read to make the part first if it pulled none.
      while (taken < size && !(await next()).done) taken += 1;
    }
  } finally {
    if (!ended) await source.return?.();
  }
}
