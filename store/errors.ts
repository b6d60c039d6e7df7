import { statfs } from 'node:fs/promises';
import { InvalidDataError, WorkerMisconfiguredError } from '../common/failures';

/**
 * Sorting store errors into the failure types at the one place that sees them raw. Callers name the setting a URI
 * came from (`input.dataset`, `input.evaluation.benchmarks[0].uri`...), so the message says what to fix.
 */

/** The run's own store: from the input, else the worker's PIFT_STORE (resolved once, at validation). */
export const RUN_STORE_SETTING = 'input.store';

/** Names a setting for messages: an input field also names the worker default it falls back to. */
export const describeSetting = (setting: string) =>
  setting === RUN_STORE_SETTING ? "input.store (or the worker's PIFT_STORE when the input has none)" : setting;

/**
 * The setting holding a location is wrong: a location named by the run's input (`input.…`) is the run's to fix, one
 * the worker chose (PIFT_STORE…) is the worker's. `message` starts with the setting, as every input error's does.
 */
export function settingError(setting: string, message: string, tried?: string): Error {
  return setting.startsWith('input.')
    ? new InvalidDataError(message, { field: setting })
    : new WorkerMisconfiguredError(message, setting, tried);
}

/** A URI that cannot name a store or an object. */
export const badUri = (setting: string, problem: string) =>
  settingError(setting, `${describeSetting(setting)}: ${problem}`);

/** Error codes of `err`, its causes and (for Node's happy-eyeballs AggregateError) its inner errors. */
export function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  const seen = new Set<unknown>();
  const visit = (e: unknown) => {
    if (!e || typeof e !== 'object' || seen.has(e)) return;
    seen.add(e);
    const { code, name, cause, errors } = e as { code?: unknown; name?: unknown; cause?: unknown; errors?: unknown };
    if (typeof code === 'string') codes.push(code);
    if (typeof name === 'string') codes.push(name);
    visit(cause);
    if (Array.isArray(errors)) errors.forEach(visit);
  };
  visit(err);
  return codes;
}

const CONNECTION_FAULTS = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeTaken',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const THROTTLED = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'TooManyRequests', 'RequestLimitExceeded']);

/** The HTTP status the server answered with, if it answered at all (S3 SDK errors, OpenAI APIError). */
export function httpStatusOf(err: unknown): number | undefined {
  const e = err as
    { $metadata?: { httpStatusCode?: number }; $response?: { statusCode?: number }; status?: unknown } | undefined;
  const status = e?.$metadata?.httpStatusCode ?? e?.$response?.statusCode ?? e?.status;
  return typeof status === 'number' ? status : undefined;
}

const TLS_CODES = new Set([
  'EPROTO',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The TLS handshake failed (http against https, an untrusted or mismatched certificate): no retry fixes that. */
export const isTlsFailure = (err: unknown) =>
  errorCodes(err).some((c) => TLS_CODES.has(c) || /^(ERR_SSL_|ERR_TLS_|CERT_)/.test(c));

/** Statuses that mean "try later": 501 Not Implemented and other 5xx are answers that will not change. */
const RETRY_LATER_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** Worth waiting out: the connection failed or the server said "later" (500/502/503/504, throttling). */
export function isTransient(err: unknown): boolean {
  if (isTlsFailure(err)) return false;
  const status = httpStatusOf(err);
  if (status !== undefined && RETRY_LATER_STATUS.has(status)) return true;
  return errorCodes(err).some((c) => THROTTLED.has(c) || CONNECTION_FAULTS.has(c));
}

const CREDENTIAL_ERRORS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'Forbidden',
  'InvalidToken',
  'ExpiredToken',
  'CredentialsProviderError',
]);

/** The bucket lives in another region than the client signs for. */
const REGION_ERRORS = new Set(['PermanentRedirect', 'IllegalLocationConstraintException']);

const messageOf = (err: unknown) => String((err as { message?: unknown } | undefined)?.message ?? '');

/** The region the server names, when it names one (S3 puts it in the message or the x-amz-bucket-region header). */
function regionHint(err: unknown): string {
  const e = err as { Region?: unknown; $response?: { headers?: Record<string, string> } } | undefined;
  const named =
    (typeof e?.Region === 'string' ? e.Region : undefined) ??
    e?.$response?.headers?.['x-amz-bucket-region'] ??
    /expecting '([a-z0-9-]+)'/.exec(messageOf(err))?.[1];
  return named ? `; the bucket is in ${named}` : '';
}

export interface S3Where {
  /** The setting that named this bucket. */
  setting: string;
  bucket: string;
  /** PIFT_S3_ENDPOINT, or undefined for AWS itself. */
  endpoint?: string;
  /** What was being done, e.g. `GET s3://bucket/key`. */
  operation: string;
}

/**
 * The typed error for an S3 failure retrying cannot fix, or undefined when it is not one of those (transient faults
 * and missing objects are the caller's to handle). Messages never carry a secret, not even the access key id.
 */
export function classifyS3Error(err: unknown, where: S3Where): Error | undefined {
  const codes = errorCodes(err);
  const status = httpStatusOf(err);
  const endpoint = where.endpoint ?? 'AWS S3 (PIFT_S3_ENDPOINT unset)';
  const tried = `${where.operation} at ${endpoint}`;
  const misconfigured = (problem: string, setting: string) =>
    new WorkerMisconfiguredError(`${problem} (tried ${tried})`, setting, tried);
  const httpCode = (...statuses: number[]) => (statuses.includes(status!) ? `HTTP ${status}` : undefined);
  const refused = codes.find((c) => CREDENTIAL_ERRORS.has(c)) ?? httpCode(401, 403);
  if (refused) {
    return misconfigured(
      `the S3 store refused the worker's credentials (${refused}) for bucket "${where.bucket}" named by ` +
        `${describeSetting(where.setting)}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and PIFT_S3_ENDPOINT`,
      'AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY',
    );
  }
  const wrongRegion =
    codes.find((c) => REGION_ERRORS.has(c)) ??
    (codes.includes('AuthorizationHeaderMalformed') && /region/i.test(messageOf(err))
      ? 'AuthorizationHeaderMalformed'
      : httpCode(301));
  if (wrongRegion) {
    return misconfigured(
      `bucket "${where.bucket}" is not in the region the worker signs for (${wrongRegion}${regionHint(err)}): ` +
        "set PIFT_S3_REGION (or AWS_REGION) to the bucket's region",
      'PIFT_S3_REGION',
    );
  }
  if (!codes.includes('NoSuchBucket')) return undefined;
  const message =
    `${describeSetting(where.setting)}: bucket "${where.bucket}" does not exist at ${endpoint} ` +
    `(tried ${where.operation}); create it or fix the URI` +
    (where.endpoint ? ', or PIFT_S3_ENDPOINT if it points at the wrong server' : '');
  return settingError(where.setting, message, tried);
}

/**
 * Runs a local write so that a full disk or quota surfaces as the worker's misconfiguration: no retry finds space
 * that is not there. `dir` is where the write went, `setting` what placed it there (PIFT_WORKDIR for scratch space).
 */
export async function mapDiskFull<T>(dir: string, setting: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT') throw err;
    const free = await statfs(dir).then(
      (s) => ` (${s.bavail * s.bsize} bytes free)`,
      () => '',
    );
    throw new WorkerMisconfiguredError(
      `${code === 'EDQUOT' ? 'disk quota exceeded' : 'scratch space full'}: no space left on the disk of ${dir}` +
        `${free}; free space there or point ${describeSetting(setting)} at a bigger disk`,
      setting,
      `writing under ${dir}`,
    );
  }
}
