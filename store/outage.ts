import { Context } from '@temporalio/activity';
import { msToNumber } from '@temporalio/common/lib/time';
import pRetry from 'p-retry';
import { TransientInfraError, WorkerMisconfiguredError } from '../common/failures';
import { isTransient, isUnreachable } from './errors';

/**
 * Waiting out infrastructure blips inside the activity, so they spend no Temporal attempts (those are meant for
 * crashes). The rule that tells an outage from a misconfiguration:
 *
 * - An endpoint that has answered this worker process once (any HTTP reply, even an error) exists: when it stops
 *   answering, or answers 5xx / "slow down", that is an outage. It is waited out with capped exponential backoff,
 *   heartbeating, for up to the outage tolerance (PIFT_OUTAGE_TOLERANCE, default 2 hours); only then does the
 *   operation fail, as TransientInfraError.
 * - An endpoint that has never answered this process and refuses connections or does not resolve is most likely a
 *   wrong setting: it gets a short probe (a few tries over about 10 s), then fails as WorkerMisconfiguredError naming
 *   the setting. A worker restarted in the middle of a longer outage fails the same way; that run is then resumed
 *   (`pift resume`) once the endpoint is back, which is cheap because every finished step is kept.
 * - Anything else (bad credentials, a missing object, a bug) is not retried here at all.
 */

export interface OutageOptions {
  /** Names the endpoint in messages and keys the "has answered" memory, e.g. `S3 endpoint http://host:8333`. */
  endpoint: string;
  /** The environment variable to fix when the endpoint was never reachable. */
  setting: string;
  /** What is being done, for the log, e.g. `PUT s3://bucket/key`. */
  operation: string;
  /** How long an outage is waited out, in ms. */
  toleranceMs: number;
  /** Whether the failure is worth waiting for; defaults to connection faults, 5xx and throttling. */
  isTransient?: (err: unknown) => boolean;
  /** Whether the reply proves the endpoint exists (it answered); defaults to "not unreachable". */
  answered?: (err: unknown) => boolean;
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
  let ms: number;
  try {
    ms = /^\d+$/.test(raw) ? Number(raw) : msToNumber(raw as Parameters<typeof msToNumber>[0]);
  } catch {
    ms = NaN;
  }
  if (!Number.isFinite(ms) || ms < 0) {
    throw new WorkerMisconfiguredError(
      `PIFT_OUTAGE_TOLERANCE=${JSON.stringify(raw)} is not a duration; use e.g. "2h", "30m" or milliseconds`,
      'PIFT_OUTAGE_TOLERANCE',
    );
  }
  return ms;
}

/** Endpoints that answered this process at least once. */
const answeredOnce = new Set<string>();

/** Records that `endpoint` exists, e.g. after a successful request made outside `waitOutOutages`. */
export const markAnswered = (endpoint: string) => answeredOnce.add(endpoint);

/** Runs `op`, waiting out transient faults as described above. */
export async function waitOutOutages<T>(op: () => Promise<T>, o: OutageOptions): Promise<T> {
  const transient = o.isTransient ?? isTransient;
  const answered = o.answered ?? ((err: unknown) => !isUnreachable(err));
  const ctx = activityContext();
  const started = Date.now();
  let heartbeat: NodeJS.Timeout | undefined;
  let lastError = '';
  try {
    return await pRetry(
      async () => {
        try {
          const result = await op();
          answeredOnce.add(o.endpoint);
          return result;
        } catch (err) {
          if (answered(err)) answeredOnce.add(o.endpoint);
          if (!transient(err)) throw abort(err);
          const waited = Date.now() - started;
          if (!answeredOnce.has(o.endpoint) && isUnreachable(err) && waited >= outageDefaults.probeMs) {
            throw abort(
              new WorkerMisconfiguredError(
                `${o.endpoint} is unreachable (${describe(err)}) and has never answered this worker: ` +
                  `check ${o.setting} (tried ${o.operation} for ${Math.round(waited / 1000)} s)`,
                o.setting,
                `${o.operation} at ${o.endpoint}`,
              ),
            );
          }
          if (waited >= o.toleranceMs) {
            throw abort(
              new TransientInfraError(
                `${o.endpoint} still failing after ${Math.round(waited / 1000)} s, longer than ` +
                  `PIFT_OUTAGE_TOLERANCE allows (${o.operation}: ${describe(err)})`,
                o.endpoint,
                { cause: err },
              ),
            );
          }
          // p-retry gives up at once on a TypeError, which is how fetch reports a refused connection.
          throw err instanceof TypeError ? new Error(describe(err), { cause: err }) : err;
        }
      },
      {
        // The budgets above end the loop; this bound only keeps p-retry's precomputed schedule finite.
        retries: 100_000,
        factor: 2,
        minTimeout: outageDefaults.minBackoffMs,
        maxTimeout: outageDefaults.maxBackoffMs,
        randomize: true,
        onFailedAttempt: (err) => {
          if (ctx?.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? err;
          lastError = describe(err);
          const logger = ctx?.log ?? console;
          logger.warn(`waiting out ${o.endpoint}: ${o.operation} failed (${lastError}), attempt ${err.attemptNumber}`);
          if (ctx && !heartbeat) {
            const beat = () =>
              ctx.heartbeat({ waitingFor: o.endpoint, since: new Date(started).toISOString(), lastError });
            beat();
            heartbeat = setInterval(beat, outageDefaults.heartbeatEveryMs);
          }
        },
      },
    );
  } finally {
    if (heartbeat) clearInterval(heartbeat);
  }
}

/** p-retry passes an AbortError's original error through; it only accepts Error instances. */
function abort(err: unknown): InstanceType<typeof pRetry.AbortError> {
  return new pRetry.AbortError(err instanceof Error ? err : new Error(String(err)));
}

function describe(err: unknown): string {
  const e = err as { code?: string; name?: string; message?: string } | undefined;
  const code = e?.code ?? (e?.name && e.name !== 'Error' ? e.name : undefined);
  const message = e?.message ?? String(err);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

/** The activity's context when running inside one; the store is also used by tests, tools and the CLI. */
function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}
