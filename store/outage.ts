import { asyncLocalStorage, type Context } from '@temporalio/activity';
import duration, { type StringValue } from 'ms';
import { setTimeout as sleep } from 'node:timers/promises';
import { TransientInfraError, WorkerMisconfiguredError } from '../common/failures';
import { errorCodes, httpStatusOf, isTlsFailure, isTransient } from './errors';

/**
 * Waiting out infrastructure blips inside the activity, so they spend no Temporal attempts (those are meant for
 * crashes), and telling an outage from a misconfiguration (docs/failures.md): outages are retried with capped
 * exponential backoff, heartbeating, up to PIFT_OUTAGE_TOLERANCE, then fail as TransientInfraError; with `probe:
 * 'fail-fast'` (where the setup is first checked) an endpoint that never answered this process and keeps failing for
 * about 10 s is a wrong setting (WorkerMisconfiguredError), as is a failed TLS handshake in both modes. Anything else
 * is not retried here; a cancelled activity stops waiting at once. A worker restarted mid-outage waits like one that
 * was running all along: the setup was already checked when the run started.
 */

/** 'wait' (every step): outages are waited out. 'fail-fast' (setup checks): a never-reached endpoint is a setting. */
export type ProbeMode = 'wait' | 'fail-fast';

export interface OutageOptions {
  /** Names the endpoint in messages and keys the "has answered" memory, e.g. `the S3 endpoint http://host:8333`. */
  endpoint: string;
  /** The environment variable to fix when the endpoint is wrong. */
  setting: string;
  /** What is being done, for the log, e.g. `PUT s3://bucket/key`. */
  operation: string;
  /** How long an outage is waited out, in ms. */
  toleranceMs: number;
  /** Defaults to 'wait'. */
  probe?: ProbeMode;
  /** Whether the failure is worth waiting for; defaults to connection faults, 500/502/503/504 and throttling. */
  isTransient?: (err: unknown) => boolean;
}

export const outageDefaults = {
  /** A run survives a store outage this long. */
  toleranceMs: 2 * 60 * 60 * 1000,
  /** How long an endpoint that never answered is probed before it counts as misconfigured. */
  probeMs: 10_000,
  minBackoffMs: 1_000,
  maxBackoffMs: 30_000,
  /** Heartbeats while waiting, well inside any heartbeat timeout the pipeline sets. */
  heartbeatEveryMs: 5_000,
} as const;

/** PIFT_OUTAGE_TOLERANCE as a duration ('2h', '90s', '30 minutes') or milliseconds; the default when unset. */
export function outageToleranceMs(env: NodeJS.ProcessEnv): number {
  const raw = env.PIFT_OUTAGE_TOLERANCE?.trim();
  if (!raw) return outageDefaults.toleranceMs;
  // ms reads a bare number as milliseconds, answers NaN for what it cannot read, and throws past 100 characters.
  const ms = raw.length <= 100 ? duration(raw as StringValue) : NaN;
  if (!Number.isFinite(ms) || ms < 0) {
    throw new WorkerMisconfiguredError(
      `PIFT_OUTAGE_TOLERANCE=${JSON.stringify(raw)} is not a duration; use e.g. "2h", "30m" or milliseconds`,
      'PIFT_OUTAGE_TOLERANCE',
    );
  }
  return ms;
}

/** Endpoints that answered this process at least once: a fail-fast probe of those waits, as for an outage. */
const answeredOnce = new Set<string>();

/** Runs `op`, waiting out transient faults as described above. */
export async function waitOutOutages<T>(op: () => Promise<T>, o: OutageOptions): Promise<T> {
  const transient = o.isTransient ?? isTransient;
  const ctx = activityContext();
  const signal = ctx?.cancellationSignal;
  const started = Date.now();
  let heartbeat: NodeJS.Timeout | undefined;
  let lastError = '';
  try {
    for (let attempt = 1; ; attempt++) {
      // Also where a cancelled pause below lands: the cancellation, not the timer's AbortError, ends the wait.
      if (signal?.aborted) throw signal.reason;
      try {
        const result = await op();
        answeredOnce.add(o.endpoint);
        return result;
      } catch (err) {
        // A reply arrived: the endpoint exists, whatever it said. A timeout, a refused or reset connection is no
        // answer (a wrong host or port can time out as well as refuse).
        if (httpStatusOf(err) !== undefined) answeredOnce.add(o.endpoint);
        lastError = describe(err);
        failUnlessOutage(err, o, transient, Date.now() - started);
      }
      (ctx?.log ?? console).warn(`waiting out ${o.endpoint}: ${o.operation} failed (${lastError}), attempt ${attempt}`);
      if (ctx && !heartbeat) {
        // What `pift status` shows of a waiting step: what it waits for, since when, why, and until when at most.
        const beat = () =>
          ctx.heartbeat({
            waitingFor: o.endpoint,
            since: new Date(started).toISOString(),
            giveUpAt: new Date(started + o.toleranceMs).toISOString(),
            lastError,
          });
        beat();
        heartbeat = setInterval(beat, outageDefaults.heartbeatEveryMs);
      }
      await sleep(backoffMs(attempt), undefined, { signal }).catch(() => undefined);
    }
  } finally {
    if (heartbeat) clearInterval(heartbeat);
  }
}

/** Throws `err`, or the typed failure it means, unless it is an outage still worth waiting out after `waited` ms. */
function failUnlessOutage(err: unknown, o: OutageOptions, transient: (err: unknown) => boolean, waited: number) {
  const misconfigured = (problem: string) =>
    new WorkerMisconfiguredError(`${o.endpoint}${problem}`, o.setting, `${o.operation} at ${o.endpoint}`);
  if (isTlsFailure(err)) {
    throw misconfigured(
      `: the TLS handshake failed (${describe(err)}): check ${o.setting} (http or https, host) and ` +
        `the certificate the endpoint presents (tried ${o.operation})`,
    );
  }
  if (!transient(err)) throw err;
  if (o.probe === 'fail-fast' && !answeredOnce.has(o.endpoint) && waited >= outageDefaults.probeMs) {
    throw misconfigured(
      ` is unreachable (${describe(err)}) and has never answered this worker: ` +
        `check ${o.setting} (tried ${o.operation} for ${Math.round(waited / 1000)} s)`,
    );
  }
  if (waited >= o.toleranceMs) {
    throw new TransientInfraError(
      `${o.endpoint} still failing after ${Math.round(waited / 1000)} s, longer than ` +
        `PIFT_OUTAGE_TOLERANCE allows (${o.operation}: ${describe(err)})`,
      o.endpoint,
      { cause: err },
    );
  }
}

/** Capped exponential backoff, jittered between half and all of each step so workers do not return in lockstep. */
function backoffMs(attempt: number): number {
  const base = Math.min(outageDefaults.maxBackoffMs, outageDefaults.minBackoffMs * 2 ** Math.min(attempt - 1, 20));
  return Math.round(base * (0.5 + Math.random() / 2));
}

/** The most telling error code (fetch hides the socket's behind a TypeError) and the message. */
function describe(err: unknown): string {
  const message = (err as { message?: string } | undefined)?.message ?? String(err);
  const code = errorCodes(err).find((c) => c !== 'Error' && c !== 'TypeError' && !message.includes(c));
  return code ? `${code}: ${message}` : message;
}

/** The activity's context when running inside one; the store is also used by tests, tools and the CLI. */
export const activityContext = (): Context | undefined => asyncLocalStorage.getStore();
