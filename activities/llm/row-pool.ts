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

interface OpenPart<R> {
  ref: PartRef;
  results: R[];
  /** Items pulled from the part so far (answered, in flight, or passed over for a stored part). */
  items: number;
  inFlight: number;
  /** Every item of the part has been pulled. */
  fed: boolean;
  /** Stored (or loaded): ready to be handed on. */
  done: boolean;
}

export async function runPool<T, R>(o: PoolOptions<T, R>): Promise<void> {
  // Answers of the parts started but not yet handed on, at most (the two oldest parts always go on, so the next is fed
  // while one finishes): bounds memory while one slow item holds the oldest part back. Eight parts of 100 at up to 200
  // concurrent items, as when this counted parts.
  const maxOpenItems = 400 * Math.max(2, Math.ceil(o.concurrency / 100));
  const open: OpenPart<R>[] = [];
  let openItems = 0;
  let running = 0;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  // A change while the feeder was not waiting (it was handing a part on, say) is kept for its next wait.
  let missed = false;
  const changed = () => {
    const w = wake;
    wake = undefined;
    if (w) w();
    else missed = true;
  };
  const nextChange = () => {
    if (!missed) return new Promise<void>((resolve) => (wake = resolve));
    missed = false;
    return Promise.resolve();
  };
  const fail = (error: unknown) => {
    failure ??= { error };
  };

  const storeIfAnswered = (entry: OpenPart<R>) => {
    if (!entry.fed || entry.inFlight || failure) return;
    o.save(entry.ref, entry.results)
      .then(() => {
        entry.done = true;
      }, fail)
      .finally(changed);
  };
  // Only the answer is kept: `item` is let go once `work` settles.
  const answer = async (entry: OpenPart<R>, position: number, item: T) => {
    try {
      entry.results[position] = await o.work(item, entry.ref);
    } catch (error) {
      // Recorded before the slot is given back, so the feeder sees it before it pulls another item.
      fail(error);
    } finally {
      running -= 1;
      entry.inFlight -= 1;
      storeIfAnswered(entry);
      changed();
    }
  };

  const handOn = async () => {
    if (failure) throw failure.error;
    while (open.length && open[0].done) {
      const { ref, results, items } = open.shift()!;
      openItems -= items;
      await o.emit(ref, results);
    }
  };
  /** Hands finished parts on until `ready()`; throws the pool's first failure. */
  const until = async (ready: () => boolean) => {
    for (;;) {
      await handOn();
      if (ready()) return;
      await nextChange();
    }
  };
  // The newest open part may take another item while a slot is free, and while it is one of the two oldest parts or
  // the open parts' answers stay under the bound.
  const mayStart = () => running < o.concurrency && (open.length <= 2 || openItems < maxOpenItems);

  try {
    for await (const part of o.parts) {
      await until(() => open.length < 2 || openItems < maxOpenItems);
      const entry: OpenPart<R> = {
        ref: { index: part.index },
        results: [],
        items: 0,
        inFlight: 0,
        fed: false,
        done: false,
      };
      open.push(entry);
      const stored = await o.load(entry.ref);
      if (stored) {
        // Its items are passed over (a stream of rows must still be read past them) and never asked.
        for await (const _ of part.items) entry.items += 1;
        openItems += entry.items;
        entry.results = stored;
        entry.fed = entry.done = true;
        continue;
      }
      for await (const item of part.items) {
        if (failure || !mayStart() || open[0].done) await until(mayStart);
        running += 1;
        entry.inFlight += 1;
        openItems += 1;
        void answer(entry, entry.items++, item);
      }
      entry.fed = true;
      storeIfAnswered(entry);
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
  const next = async (): Promise<{ row: T } | undefined> => {
    if (ended) return undefined;
    const r = await source.next();
    if (r.done) ended = true;
    return r.done ? undefined : { row: r.value };
  };
  try {
    for (let index = first; ; index++) {
      // A part is only made when it has a row: no empty part after a last full one.
      let head = await next();
      if (!head) return;
      let taken = 0;
      const items = async function* () {
        while (taken < size) {
          const got = head ?? (await next());
          head = undefined;
          if (!got) return;
          taken += 1;
          yield got.row;
        }
      };
      yield { index, items: { [Symbol.asyncIterator]: items } };
      // A part whose items were never pulled still owns the row read to make it.
      if (head) taken += 1;
      head = undefined;
      while (taken < size && (await next())) taken += 1;
    }
  } finally {
    if (!ended) await source.return?.();
  }
}
