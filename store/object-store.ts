import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { mapDiskFull } from './errors';
import { hashedCopy, writeFileAtomically } from './local-files';
import { validatePrefix } from './keys';

/**
 * One interface for every place the pipeline keeps its artifacts: a local directory (the embedded default) or an
 * S3-compatible bucket. Keys are '/'-separated and relative to the store's root, so the same key names the same
 * object whichever backend a deployment picks.
 */
export abstract class ObjectStore {
  /** Where the store lives, as a URI: `file:///abs/dir` or `s3://bucket/prefix`. */
  abstract readonly root: string;

  /** The full URI of `key`, for messages and for handing an object to another process. */
  abstract uriFor(key: string): string;

  abstract put(key: string, body: string | Uint8Array, options?: PutOptions): Promise<void>;

  /**
   * Writes `body` at `key` only if no object is there yet, atomically: of several writers racing for one key exactly
   * one gets true (S3 `If-None-Match: *`, a local exclusive link). false when the key was already taken.
   */
  abstract putIfAbsent(key: string, body: string): Promise<boolean>;

  /**
   * Streams a local file up (big files go up in parts on S3), hashing it on the way: the file is read once, and what
   * is returned describes the bytes that were sent.
   */
  abstract putFile(key: string, localPath: string): Promise<WrittenObject>;

  /** Copies an object inside the store, without moving its bytes through this process where the backend can. */
  abstract copy(fromKey: string, toKey: string): Promise<void>;

  /** @throws NotFoundError when the object is absent. */
  abstract get(key: string): Promise<Buffer>;

  /** The object decoded as UTF-8. @throws NotFoundError when the object is absent. */
  async getText(key: string): Promise<string> {
    return (await this.get(key)).toString('utf8');
  }

  /**
   * `getText`, or undefined when the object is absent: for lookups that miss as often as they hit (the answer cache),
   * with no error made for each miss.
   */
  async findText(key: string): Promise<string | undefined> {
    return this.getText(key).catch((err: unknown) => (err instanceof NotFoundError ? undefined : Promise.reject(err)));
  }

  /**
   * The object as a byte stream, for reading a large object without holding it whole in memory.
   * @throws NotFoundError when the object is absent.
   */
  abstract getStream(key: string): Promise<Readable>;

  /**
   * Streams an object to `localPath`, creating parent directories. The file appears whole or not at all. With
   * `expect`, the bytes are hashed as they arrive and the file only appears when they match.
   * @throws NotFoundError when the object is absent.
   * @throws IntegrityError when the object's bytes are not those `expect` names.
   */
  async getFile(key: string, localPath: string, expect?: ExpectedObject): Promise<WrittenObject> {
    const target = path.resolve(localPath);
    // Opened first, so that a problem with the destination is never reported as a missing object.
    const source = await this.openSource(key);
    // Downloads land in the worker's scratch space; the file is renamed into place only once its bytes match.
    return mapDiskFull(path.dirname(target), 'PIFT_WORKDIR', () =>
      writeFileAtomically(target, async (tmp) =>
        checkIntegrity(this.uriFor(key), expect, await hashedCopy(source, tmp)),
      ),
    ).finally(() => source.destroy?.());
  }

  /**
   * The object's bytes for `getFile`, read once and written out chunk by chunk: a missing object fails here, before
   * anything is written. A source that holds a connection before its first read can be destroyed unread.
   */
  protected abstract openSource(key: string): Promise<AsyncIterable<Uint8Array> & { destroy?(): void }>;

  /** The object's size, or null when it is absent. */
  abstract head(key: string): Promise<{ size: number } | null>;

  async exists(key: string): Promise<boolean> {
    return (await this.head(key)) !== null;
  }

  /**
   * Every key below the folder `prefix` (recursive, sorted, full keys). `prefix` names a folder: 'runs/a' lists
   * 'runs/a/x' but not 'runs/ab' nor 'runs/a' itself; '' lists the whole store.
   */
  abstract list(prefix: string): Promise<string[]>;

  /** Deletes one object; deleting an absent one is not an error. */
  abstract delete(key: string): Promise<void>;

  /** Deletes every key below the folder `prefix` (same meaning as in `list`); the whole root cannot be deleted. */
  async deletePrefix(prefix: string): Promise<void> {
    const folder = validatePrefix(prefix);
    if (folder === '') throw new Error(`refusing to delete the whole store ${this.root}; name a folder`);
    await this.deleteFolder(folder);
  }

  /** Deletes every key below `folder`, a valid key. */
  protected abstract deleteFolder(folder: string): Promise<void>;
}

export interface PutOptions {
  /**
   * false for an object whose loss only costs work done again (an answer-cache entry): the local store then skips
   * flushing it to disk before the rename. A crash can still leave it empty or torn, never half-replaced by another
   * write, and the reader must treat an unreadable object as absent. Defaults to true.
   */
  durable?: boolean;
}

/** Size and sha256 of the bytes a transfer moved. */
export interface WrittenObject {
  bytes: number;
  sha256: string;
}

/** What a download must receive, as a manifest recorded it. */
export type ExpectedObject = Partial<WrittenObject>;

/**
 * An object's bytes are not those its manifest recorded (damaged in the store or on the way). Retrying the same
 * download cannot help; the caller decides whether an older copy or recomputing the step can.
 */
export class IntegrityError extends Error {
  constructor(
    public readonly uri: string,
    public readonly expected: ExpectedObject,
    public readonly actual: WrittenObject,
  ) {
    super(
      `${uri} is damaged: expected ${expected.bytes ?? '?'} bytes with sha256 ${expected.sha256 ?? '?'}, ` +
        `read ${actual.bytes} bytes with sha256 ${actual.sha256}`,
    );
    this.name = 'IntegrityError';
  }
}

/** `actual`, when it is what `expect` names; IntegrityError when it is not. */
export function checkIntegrity(uri: string, expect: ExpectedObject | undefined, actual: WrittenObject): WrittenObject {
  if (
    (expect?.bytes !== undefined && expect.bytes !== actual.bytes) ||
    (expect?.sha256 !== undefined && expect.sha256 !== '' && expect.sha256 !== actual.sha256)
  ) {
    throw new IntegrityError(uri, expect ?? {}, actual);
  }
  return actual;
}

/**
 * The object does not exist. Retrying cannot make it appear, so callers can treat this as final, while every other
 * error (network, throttling, a server 5xx) propagates unchanged for Temporal to retry.
 */
export class NotFoundError extends Error {
  constructor(
    public readonly uri: string,
    options?: { cause?: unknown },
  ) {
    super(`object not found: ${uri}`, options);
    this.name = 'NotFoundError';
  }
}
