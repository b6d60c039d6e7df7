import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { WrittenObject } from './object-store';

/**
 * A pass-through stream that hashes and counts what flows through it, so an upload or a download needs no second
 * read of the bytes to know their sha256.
 */
export class HashingStream extends Transform {
  private readonly hash = createHash('sha256');
  private count = 0;
  private result?: WrittenObject;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void) {
    this.hash.update(chunk);
    this.count += chunk.length;
    done(null, chunk);
  }

  /** Size and sha256 of everything that passed; call once the stream has ended. */
  digest(): WrittenObject {
    this.result ??= { bytes: this.count, sha256: this.hash.digest('hex') };
    return this.result;
  }
}
