import type { Readable } from 'node:stream';

/**
 * One interface for every place the pipeline keeps its artifacts: a local directory (the embedded default) or an
 * S3-compatible bucket. Keys are '/'-separated and relative to the store's root, so the same key names the same
 * object whichever backend a deployment picks.
 */
export interface ObjectStore {
  /** Where the store lives, as a URI: `file:///abs/dir` or `s3://bucket/prefix`. */
  readonly root: string;

  /** The full URI of `key`, for messages and for handing an object to another process. */
  uriFor(key: string): string;

  put(key: string, body: string | Uint8Array): Promise<void>;

  /** Streams a local file up; big files go up in parts on S3. */
  putFile(key: string, localPath: string): Promise<void>;

  /** @throws NotFoundError when the object is absent. */
  get(key: string): Promise<Buffer>;

  /** The object decoded as UTF-8. @throws NotFoundError when the object is absent. */
  getText(key: string): Promise<string>;

  /**
   * The object as a byte stream, for reading a large object without holding it whole in memory.
   * @throws NotFoundError when the object is absent.
   */
  getStream(key: string): Promise<Readable>;

  /**
   * Streams an object to `localPath`, creating parent directories. The file appears whole or not at all.
   * @throws NotFoundError when the object is absent.
   */
  getFile(key: string, localPath: string): Promise<void>;

  /** The object's size, or null when it is absent. */
  head(key: string): Promise<{ size: number } | null>;

  exists(key: string): Promise<boolean>;

  /**
   * Every key below the folder `prefix` (recursive, sorted, full keys). `prefix` names a folder: 'runs/a' lists
   * 'runs/a/x' but not 'runs/ab' nor 'runs/a' itself; '' lists the whole store.
   */
  list(prefix: string): Promise<string[]>;

  /** Deletes one object; deleting an absent one is not an error. */
  delete(key: string): Promise<void>;

  /** Deletes every key below the folder `prefix` (same meaning as in `list`); the whole root cannot be deleted. */
  deletePrefix(prefix: string): Promise<void>;
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
