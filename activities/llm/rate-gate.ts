/**
 * A step's budget of requests and tokens per minute, shared by every request the step sends to one endpoint: token
 * buckets for what the input sets (`requestsPerMinute`, `tokensPerMinute`) and for what the endpoint announces in its
 * `x-ratelimit-limit-*` headers, and a pause for everyone after a 429's `Retry-After` (or `retry-after-ms`) or a
 * `x-ratelimit-remaining-*: 0`. Waiters are served first come, first served, and only the first of them waits on a
 * timer, so a thousand rows waiting for their turn cost one wake-up per request sent, not one per row.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface RateBudget {
  requestsPerMinute?: number;
  tokensPerMinute?: number;
}

/** Anything with the Fetch API's `get` (a Response's headers, an APIError's headers). */
export type HeaderSource = { get(name: string): string | null } | undefined;

/** With no Retry-After on a 429, everyone pauses this long before the next request. */
const DEFAULT_PAUSE_MS = 1_000;

class Bucket {
  private level: number;
  private at: number;
  /** Tokens per ms. */
  private rate!: number;
  /** At most one second's worth saved up, so a burst never runs far ahead of the rate. */
  private capacity!: number;

  constructor(perMinute: number, now: number, level?: number) {
    this.setLimit(perMinute);
    this.level = Math.min(this.capacity, level ?? this.capacity);
    this.at = now;
  }

  setLimit(perMinute: number): void {
    this.rate = perMinute / 60_000;
    this.capacity = Math.max(1, perMinute / 60);
  }

  private refill(now: number): void {
    this.level = Math.min(this.capacity, this.level + (now - this.at) * this.rate);
    this.at = now;
  }

  /** Ms until `cost` may be taken (0: now). A cost above the capacity waits for a full bucket and leaves a debt. */
  waitFor(cost: number, now: number): number {
    this.refill(now);
    const need = Math.min(cost, this.capacity);
    return this.level >= need ? 0 : Math.ceil((need - this.level) / this.rate);
  }

  take(cost: number): void {
    this.level -= cost;
  }

  /** The endpoint says how much is left: never believe in more than that. */
  atMost(level: number, now: number): void {
    this.refill(now);
    this.level = Math.min(this.level, level);
  }
}

export class RateGate {
  /** The budget's buckets and the endpoint's: a request takes one from each request bucket, its cost from each other. */
  private readonly requestBuckets: Bucket[] = [];
  private readonly tokenBuckets: Bucket[] = [];
  private readonly announced: { requests?: Bucket; tokens?: Bucket } = {};
  private pausedUntil = 0;
  /** Settles once every request that asked so far is through or gave up: the next to ask waits for it. */
  private line: Promise<unknown> = Promise.resolve();
  private waiting = 0;
  /** When the endpoint last answered a request (any status but 429 / 5xx): rate limits are waited out while it does. */
  lastAnswerAt: number;

  constructor(
    budget: RateBudget = {},
    private readonly now: () => number = Date.now,
  ) {
    const t = now();
    if (budget.requestsPerMinute) this.requestBuckets.push(new Bucket(budget.requestsPerMinute, t));
    if (budget.tokensPerMinute) this.tokenBuckets.push(new Bucket(budget.tokensPerMinute, t));
    this.lastAnswerAt = t;
  }

  /** Resolves when a request costing `cost` tokens may be sent; rejects with the signal's reason when it aborts. */
  async acquire(cost: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    // Nobody waiting and the budget allows it: through at once, with no timer nor listener made for it.
    if (!this.waiting && this.turn(cost, this.now()) === 0) return;
    const before = this.line;
    let through!: () => void;
    // The next in line waits for this one and for everyone before it (this one may give up first).
    this.line = Promise.all([before, new Promise<void>((resolve) => (through = resolve))]);
    this.waiting += 1;
    let onAbort = () => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([before, aborted]);
      // The head of the line: a pause or a limit learnt while it sleeps is seen when it wakes.
      for (let wait; (wait = this.turn(cost, this.now())) > 0;) {
        // The timer rejects when the signal aborts: with the signal's reason, as a waiter in line does.
        await sleep(wait, undefined, { signal }).catch(() => aborted);
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.waiting -= 1;
      through();
    }
  }

  /** Learns from one HTTP response: the endpoint's announced limits, what is left of them, and any Retry-After. */
  observe(status: number, headers: HeaderSource): void {
    const now = this.now();
    if (status === 429) {
      const wait = retryAfterMs(headers) ?? DEFAULT_PAUSE_MS;
      this.pauseUntil(now + wait);
      for (const b of this.requestBuckets) b.atMost(0, now);
    } else if (status < 500) {
      this.lastAnswerAt = now;
    }
    for (const kind of ['requests', 'tokens'] as const) {
      const limit = numberHeader(headers, `x-ratelimit-limit-${kind}`);
      if (limit !== undefined && limit > 0) {
        const known = this.announced[kind];
        if (known) known.setLimit(limit);
        else {
          // Requests sent before the limit was known are still on their way there: start from an empty bucket.
          const bucket = new Bucket(limit, now, 0);
          this.announced[kind] = bucket;
          (kind === 'requests' ? this.requestBuckets : this.tokenBuckets).push(bucket);
        }
      }
      const remaining = numberHeader(headers, `x-ratelimit-remaining-${kind}`);
      if (remaining === undefined) continue;
      this.announced[kind]?.atMost(remaining, now);
      if (remaining <= 0) {
        // The reset header says when the whole window is back; one unit of it comes back after reset / limit.
        const reset = durationMs(headers?.get(`x-ratelimit-reset-${kind}`) ?? null);
        if (reset !== undefined) this.pauseUntil(now + (limit ? reset / limit : reset));
      }
    }
  }

  private pauseUntil(t: number): void {
    if (t > this.pausedUntil) this.pausedUntil = t;
  }

  /** Ms until a request costing `cost` tokens may be sent; 0 when it may go now, and then it is taken from the budget. */
  private turn(cost: number, now: number): number {
    let wait = Math.max(0, this.pausedUntil - now);
    for (const b of this.requestBuckets) wait = Math.max(wait, b.waitFor(1, now));
    for (const b of this.tokenBuckets) wait = Math.max(wait, b.waitFor(cost, now));
    if (wait > 0) return wait;
    for (const b of this.requestBuckets) b.take(1);
    for (const b of this.tokenBuckets) b.take(cost);
    return 0;
  }
}

function numberHeader(headers: HeaderSource, name: string): number | undefined {
  const raw = headers?.get(name);
  if (raw === null || raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw);
  return Number.isFinite(n) ? n : undefined;
}

/** `retry-after-ms`, else `Retry-After` in seconds or as an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(headers: HeaderSource): number | undefined {
  const ms = numberHeader(headers, 'retry-after-ms');
  if (ms !== undefined && ms >= 0) return ms;
  const raw = headers?.get('retry-after');
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** OpenAI's reset durations: `1s`, `6m0s`, `20ms`, `1h2m3.5s`; a bare number is seconds. */
export function durationMs(raw: string | null): number | undefined {
  const text = raw?.trim();
  if (!text) return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  if (!/^(\d+(\.\d+)?(ms|h|m|s))+$/.test(text)) return undefined;
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) total += Number(n) * units[unit];
  return total;
}
