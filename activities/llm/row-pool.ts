/**
 * One pool of in-flight requests for a whole step. Work comes in parts (100 scored rows, one (model, benchmark)
 * file of judgments) read lazily from an async iterable; every item of every open part shares the same
 * `concurrency` slots, so the pipe never drains while one part waits for its slowest row. Each part is stored as soon
 * as all its items are answered (a retried activity loads it instead of asking again) and handed on in order, so the
 * step's output is the same bytes as when parts ran one after another.
 */

export interface PoolPart<T> {
  index: number;
  items: T[];
}

export interface PoolOptions<T, R> {
  parts: AsyncIterable<PoolPart<T>>;
  /** Items in flight at most. */
  concurrency: number;
  /**
   * Items of the parts started but not yet handed on, at most (two parts are always let open, so the next is queued
   * while one finishes): bounds memory while one slow item holds the oldest part back. Counted in items, not parts,
   * so that larger parts (a million rows come in parts of 1,000) keep no more rows alive: rows held across several
   * young-generation collections are promoted, and the old generation then grows with the dataset, garbage and all.
   */
  maxOpenItems?: number;
  /** The part's results stored by an earlier attempt, or undefined: then its items are asked. */
  load: (part: PoolPart<T>) => Promise<R[] | undefined>;
  work: (item: T, part: PoolPart<T>) => Promise<R>;
  /** Stores a finished part (before it is handed on, and whatever the order parts finish in). */
  save: (part: PoolPart<T>, results: R[]) => Promise<void>;
  /** Called once per part, in part order. */
  emit: (part: PoolPart<T>, results: R[]) => Promise<void> | void;
}

interface OpenPart<T, R> {
  part: PoolPart<T>;
  results?: R[];
}

export async function runPool<T, R>(o: PoolOptions<T, R>): Promise<void> {
  // Eight parts of 100 at up to 200 concurrent items, as when this counted parts.
  const maxOpenItems = o.maxOpenItems ?? 400 * Math.max(2, Math.ceil(o.concurrency / 100));
  const open: OpenPart<T, R>[] = [];
  let openItems = 0;
  const waiting: Array<() => void> = [];
  let running = 0;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const changed = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const nextChange = () => new Promise<void>((resolve) => (wake = resolve));

  const slot = async () => {
    if (running < o.concurrency) running += 1;
    else await new Promise<void>((resolve) => waiting.push(resolve)); // the releasing item hands its slot over
  };
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else running -= 1;
    changed();
  };
  const run = async (item: T, part: PoolPart<T>): Promise<R> => {
    await slot();
    try {
      // Once the pool has failed, queued items are dropped instead of sending requests nobody will store.
      if (failure) throw failure.error;
      return await o.work(item, part);
    } catch (error) {
      // Recorded before the slot is handed over, so the next queued item sees it.
      failure ??= { error };
      throw error;
    } finally {
      release();
    }
  };

  const start = async (part: PoolPart<T>) => {
    const entry: OpenPart<T, R> = { part };
    open.push(entry);
    openItems += part.items.length;
    const stored = await o.load(part);
    if (stored) {
      entry.results = stored;
      return;
    }
    Promise.all(part.items.map((item) => run(item, part)))
      .then(async (results) => {
        await o.save(part, results);
        entry.results = results;
      })
      .catch((error: unknown) => {
        failure ??= { error };
      })
      .finally(changed);
  };

  const handOn = async () => {
    if (failure) throw failure.error;
    while (open.length && open[0].results) {
      const { part, results } = open.shift()!;
      openItems -= part.items.length;
      await o.emit(part, results!);
    }
  };

  for await (const part of o.parts) {
    // The next part starts once the items already queued no longer fill the slots.
    for (;;) {
      await handOn();
      if (waiting.length < o.concurrency && (open.length < 2 || openItems < maxOpenItems)) break;
      await nextChange();
    }
    await start(part);
  }
  for (;;) {
    await handOn();
    if (!open.length) return;
    await nextChange();
  }
}

/** Rows in parts of `size`, numbered from `first`, pulled from `rows` only as the pool asks for the next part. */
export async function* inParts<T>(
  rows: AsyncIterable<T> | Iterable<T>,
  size: number,
  first = 0,
): AsyncGenerator<PoolPart<T>> {
  let items: T[] = [];
  let index = first;
  for await (const row of rows) {
    items.push(row);
    if (items.length === size) {
      yield { index: index++, items };
      items = [];
    }
  }
  if (items.length) yield { index, items };
}
