// Every way a step can fail, as types. Activities throw these; the workflow and the clients decide by the failure's
// type, never by its message. Workflow-safe: no Node built-ins here.
import { ApplicationFailure } from '@temporalio/common';

/** Failure types as they appear on Temporal failures (ApplicationFailure.type). */
export const FailureType = {
  /** The run's input or data is wrong: retrying cannot help, a new run with fixed input can. */
  BadInput: 'BadInput',
  /** The worker's environment is wrong (endpoint, key, credentials, bucket, disk): fix the worker, then `resume`. */
  WorkerMisconfigured: 'WorkerMisconfigured',
  /** Store, endpoint or server blip: waited out or retried without spending the attempts meant for crashes. */
  TransientInfra: 'TransientInfra',
  /**
   * A committed step's output no longer matches its manifest's sha256: the workflow retrains a damaged hand-off's
   * producer; `resume` recomputes any other step that wrote it (its outputs are verified whenever it is reused).
   */
  CorruptArtifact: 'CorruptArtifact',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Never retried by any activity of the pipeline. */
export const NON_RETRYABLE_FAILURES: string[] = [
  FailureType.BadInput,
  FailureType.WorkerMisconfigured,
  FailureType.CorruptArtifact,
];

export interface Where {
  file?: string;
  line?: number;
  field?: string;
}

/**
 * Bad user input (a malformed dataset line, a missing field, an impossible setting). The message always names where
 * the problem is: file, line and/or field, and never echoes file content.
 */
export class InvalidDataError extends Error {
  constructor(
    message: string,
    public readonly where: Where = {},
  ) {
    super(message);
    this.name = 'InvalidDataError';
  }
}

/** Bad input in one setting: the message starts with the setting's name, as every input error's does. */
export const badSetting = (field: string, problem: string) => new InvalidDataError(`${field}: ${problem}`, { field });

/**
 * The worker's own setup is wrong. `setting` names the environment variable or URI to fix; `tried` says what was
 * probed, so the operator can reproduce it.
 */
export class WorkerMisconfiguredError extends Error {
  constructor(
    message: string,
    public readonly setting: string,
    public readonly tried?: string,
  ) {
    super(message);
    this.name = 'WorkerMisconfiguredError';
  }
}

/** A blip of the store, the endpoint or a server; worth waiting out. */
export class TransientInfraError extends Error {
  constructor(
    message: string,
    public readonly service: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TransientInfraError';
  }
}

/**
 * A full disk met by a local write that no store mapped (stores name their own setting): the worker's scratch space,
 * at whichever write it happened (a step's local copy of the dataset, a trainer config, a scratch download). No retry
 * finds space that is not there.
 */
function scratchFull(err: unknown): WorkerMisconfiguredError | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return undefined;
  const { syscall, path } = err as { syscall?: string; path?: string };
  const what = code === 'EDQUOT' ? 'disk quota exceeded' : 'no space left on the device';
  return new WorkerMisconfiguredError(
    `scratch space full: ${what}${syscall ? ` (${syscall}${path ? ` ${path}` : ''})` : ''}; free space under ` +
      'PIFT_WORKDIR or point PIFT_WORKDIR at a bigger disk, then resume the run',
    'PIFT_WORKDIR',
  );
}

/** Turns our error classes into Temporal failures of the matching type; anything else (a bug) passes unchanged. */
export function toTemporalFailure(err: unknown): unknown {
  err = scratchFull(err) ?? err;
  const [type, details] =
    err instanceof InvalidDataError
      ? [FailureType.BadInput, err.where]
      : err instanceof WorkerMisconfiguredError
        ? [FailureType.WorkerMisconfigured, { setting: err.setting, tried: err.tried }]
        : err instanceof TransientInfraError
          ? [FailureType.TransientInfra, { service: err.service }]
          : [];
  if (type === undefined) return err;
  const nonRetryable = NON_RETRYABLE_FAILURES.includes(type);
  return ApplicationFailure.create({ message: (err as Error).message, type, nonRetryable, details: [details] });
}

/** Runs an activity body and reports its failures by type. */
export async function withTypedFailures<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toTemporalFailure(err);
  }
}

/** The first typed ApplicationFailure of an error or of its causes (ActivityFailure → ApplicationFailure). */
export function typedFailureOf(err: unknown): (ApplicationFailure & { type: string }) | undefined {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    if (e instanceof ApplicationFailure && e.type) return e as ApplicationFailure & { type: string };
  }
  return undefined;
}

/** The failure type carried by an error or any of its causes. */
export const failureTypeOf = (err: unknown): string | undefined => typedFailureOf(err)?.type;

/** The first detail of a typed failure, as the activity that threw it wrote it ({ setting }, { producer }). */
export const failureDetail = (err: unknown, type: string, key: string): unknown => {
  const failure = typedFailureOf(err);
  return failure?.type === type ? (failure.details?.[0] as Record<string, unknown> | undefined)?.[key] : undefined;
};
