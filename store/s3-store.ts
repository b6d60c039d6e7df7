import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCopyCommand,
  paginateListObjectsV2,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import pLimit from 'p-limit';
import { hashing } from './local-files';
import { storeDefaults } from './defaults';
import { classifyS3Error, httpStatusOf, isTransient, RUN_STORE_SETTING } from './errors';
import { outageDefaults, type ProbeMode, waitOutOutages } from './outage';
import { keyProblem, validateKey, validatePrefix } from './keys';
import { NotFoundError, ObjectStore, type WrittenObject } from './object-store';

export interface S3StoreOptions {
  client: S3Client;
  bucket: string;
  /** Folder inside the bucket that acts as the store root; '' for the whole bucket. */
  prefix?: string;
  /** Keys per ListObjectsV2 page (tests lower it to exercise pagination). */
  listPageSize?: number;
  /** The setting that named this store, for messages: `input.store`, `input.dataset`... */
  setting?: string;
  /** PIFT_S3_ENDPOINT as configured (undefined for AWS), for messages and for telling outages from typos. */
  endpoint?: string;
  /** How long an outage of the endpoint is waited out (PIFT_OUTAGE_TOLERANCE). */
  outageToleranceMs?: number;
  /** 'fail-fast' only where the setup is first checked (see ./outage); every step waits. */
  probe?: ProbeMode;
  /** Copies above `singleMaxBytes` go part by part (tests lower both to exercise the multipart copy). */
  copyLimits?: { singleMaxBytes: number; partSize: number };
}

/** An S3-compatible bucket (AWS, MinIO, SeaweedFS, R2) used as an object store. */
export class S3Store extends ObjectStore {
  readonly root: string;
  readonly bucket: string;
  private readonly client: S3Client;
  private readonly prefix: string;

  constructor(private readonly options: S3StoreOptions) {
    super();
    this.client = options.client;
    this.bucket = options.bucket;
    this.prefix = validatePrefix(options.prefix ?? '');
    this.root = `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
  }

  uriFor(key: string): string {
    return `s3://${this.bucket}/${this.objectKey(key)}`;
  }

  async put(key: string, body: string | Uint8Array): Promise<void> {
    await this.resilient('PUT', key, () => this.putObject(key, body));
  }

  async putIfAbsent(key: string, body: string): Promise<boolean> {
    return this.resilient('PUT', key, () =>
      this.putObject(key, body, '*').then(
        () => true,
        // 412: the key exists. (409, a concurrent conditional write still in flight, is retried as transient.)
        (err: unknown) => (httpStatusOf(err) === 412 ? false : Promise.reject(err)),
      ),
    );
  }

  async putFile(key: string, localPath: string): Promise<WrittenObject> {
    const objectKey = this.objectKey(key);
    // Upload sends one PutObject for small files and a parallel multipart upload for big ones, aborting the
    // multipart upload on failure so no orphaned parts keep costing storage. The bytes are hashed as they are sent;
    // a retry reads the file afresh and hashes it afresh.
    return this.resilient('PUT', key, async () => {
      // A file that cannot be read fails the upload through the hashing generator.
      const sent = hashing(createReadStream(localPath));
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: objectKey, Body: Readable.from(sent.chunks) },
        partSize: storeDefaults.multipartPartSize,
        queueSize: storeDefaults.multipartQueueSize,
        leavePartsOnError: false,
      });
      await upload.done();
      return sent.digest();
    });
  }

  /** CopyObject up to 5 GiB (S3's limit for one request); bigger objects are copied part by part, in parallel. */
  async copy(fromKey: string, toKey: string): Promise<void> {
    const head = await this.head(fromKey);
    if (!head) throw new NotFoundError(this.uriFor(fromKey));
    // Each segment URI-encoded, the slashes between them kept.
    const source = `${this.bucket}/${encodeURIComponent(this.objectKey(fromKey)).replaceAll('%2F', '/')}`;
    const Key = this.objectKey(toKey);
    const Bucket = this.bucket;
    const { singleMaxBytes, partSize } = this.options.copyLimits ?? {
      singleMaxBytes: storeDefaults.singleCopyMaxBytes,
      partSize: storeDefaults.copyPartSize,
    };
    await this.resilient('COPY', toKey, async () => {
      if (head.size <= singleMaxBytes) {
        await this.client.send(new CopyObjectCommand({ Bucket, Key, CopySource: source }));
        return;
      }
      const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
      const limit = pLimit(storeDefaults.multipartQueueSize);
      const copyPart = async (i: number) => {
        const PartNumber = i + 1;
        const range = `bytes=${i * partSize}-${Math.min(head.size, (i + 1) * partSize) - 1}`;
        const out = await this.client.send(
          new UploadPartCopyCommand({ Bucket, Key, UploadId, PartNumber, CopySource: source, CopySourceRange: range }),
        );
        return { ETag: out.CopyPartResult?.ETag, PartNumber };
      };
      try {
        const count = Math.ceil(head.size / partSize);
        const parts = await Promise.all(Array.from({ length: count }, (_, i) => limit(() => copyPart(i))));
        await this.client.send(
          new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }),
        );
      } catch (err) {
        limit.clearQueue(); // no part starts after the abort
        await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
        throw err;
      }
    });
  }

  async get(key: string): Promise<Buffer> {
    return buffer(await this.getStream(key));
  }

  /**
   * Opening waits out outages like any request; a read that breaks mid-stream (the connection reset or cut short)
   * reopens the same version of the object at the byte where it stopped, so the reader sees one unbroken stream.
   */
  async getStream(key: string): Promise<Readable> {
    const first = await this.resilient('GET', key, () => this.openBody(key, 0));
    // The body is also freed when the stream is destroyed before its first read, which never enters the generator.
    return Readable.from(this.resumingBytes(key, first)).once('close', () => first.body.destroy());
  }

  private async *resumingBytes(key: string, first: OpenedBody): AsyncGenerator<Buffer> {
    let opened = first;
    let offset = 0;
    try {
      for (;;) {
        try {
          for await (const chunk of opened.body) {
            offset += (chunk as Buffer).length;
            yield chunk as Buffer;
          }
          if (opened.end === undefined || offset >= opened.end) return;
          throw Object.assign(new Error(`${this.uriFor(key)} ended at byte ${offset} of ${opened.end}`), {
            code: 'ECONNRESET',
          });
        } catch (err) {
          if (!isTransient(err)) throw err;
          opened.body.destroy();
          const { etag, end } = opened;
          opened = await this.resilient('GET', key, () => this.openBody(key, offset, etag));
          opened.end ??= end;
        }
      }
    } finally {
      // Also when the reader stops early: the connection goes back to the pool.
      opened.body.destroy();
    }
  }

  protected openSource(key: string): Promise<Readable> {
    return this.getStream(key);
  }

  async head(key: string): Promise<{ size: number } | null> {
    const objectKey = this.objectKey(key);
    return this.resilient('HEAD', key, () =>
      this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey })).then(
        (out) => ({ size: out.ContentLength ?? 0 }),
        (err: unknown) => (isNotFound(err) ? null : Promise.reject(err)),
      ),
    );
  }

  async delete(key: string): Promise<void> {
    const objectKey = this.objectKey(key);
    await this.resilient('DELETE', key, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey })),
    );
  }

  async list(prefix: string): Promise<string[]> {
    const folder = validatePrefix(prefix);
    const rootPrefix = this.prefix ? `${this.prefix}/` : '';
    return this.resilient('LIST', folder, async () => {
      const keys: string[] = [];
      for await (const page of this.listPages(folder)) {
        // Skip what no key could name: folder markers ('dir/') and names written by other tools ('a//b').
        keys.push(...page.map((k) => k.slice(rootPrefix.length)).filter((key) => keyProblem(key) === undefined));
      }
      return keys.sort();
    });
  }

  protected async deleteFolder(folder: string): Promise<void> {
    // Deleting is idempotent, so a retry after an outage simply lists what is left.
    await this.resilient('DELETE', `${folder}/`, async () => {
      for await (const page of this.listPages(folder)) {
        if (page.length > 0) await this.deleteObjects(page);
      }
    });
  }

  /**
   * Every request goes through here: faults that retrying cannot fix become typed failures naming the setting,
   * outages are waited out (see ./outage), missing objects pass through unchanged.
   */
  private async resilient<T>(verb: string, key: string, op: () => Promise<T>): Promise<T> {
    const operation = `${verb} ${this.root}/${key}`;
    const { setting = RUN_STORE_SETTING, endpoint, outageToleranceMs, probe } = this.options;
    const where = { setting, bucket: this.bucket, endpoint, operation };
    const classified = () => op().catch((err: unknown) => Promise.reject(classifyS3Error(err, where) ?? err));
    return waitOutOutages(classified, {
      endpoint: `the S3 endpoint ${endpoint ?? '(AWS default)'}`,
      setting: 'PIFT_S3_ENDPOINT',
      operation,
      toleranceMs: outageToleranceMs ?? outageDefaults.toleranceMs,
      probe,
    });
  }

  /** The raw object keys below `folder` of this store, a page at a time: at most 1000, what one DeleteObjects takes. */
  private async *listPages(folder: string): AsyncGenerator<string[]> {
    const fullFolder = [this.prefix, folder].filter((s) => s !== '').join('/');
    const pages = paginateListObjectsV2(
      { client: this.client, pageSize: this.options.listPageSize ?? storeDefaults.listPageSize },
      { Bucket: this.bucket, Prefix: fullFolder === '' ? undefined : `${fullFolder}/` },
    );
    for await (const page of pages) {
      yield (page.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [object.Key]));
    }
  }

  private async deleteObjects(objectKeys: string[]): Promise<void> {
    const out = await this.client.send(
      new DeleteObjectsCommand({
        Bucket: this.bucket,
        Delete: { Objects: objectKeys.map((Key) => ({ Key })), Quiet: true },
      }),
    );
    const errors = out.Errors ?? [];
    if (errors.length > 0) {
      const sample = errors.slice(0, 3).map((e) => `${e.Key}: ${e.Code} ${e.Message}`);
      throw new Error(`failed to delete ${errors.length} objects from s3://${this.bucket}: ${sample.join('; ')}`);
    }
  }

  /** A PutObject with an explicit length: the SDK cannot infer one for an empty body and would warn about streams. */
  private putObject(key: string, body: string | Uint8Array, IfNoneMatch?: string) {
    const ContentLength = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
    const Key = this.objectKey(key);
    return this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: body, ContentLength, IfNoneMatch }));
  }

  /** A GET from byte `from` on, of the version tagged `etag` when given (a changed object fails, never mixes). */
  private async openBody(key: string, from: number, etag?: string): Promise<OpenedBody> {
    const Range = from > 0 ? `bytes=${from}-` : undefined;
    const out = await this.client
      .send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key), Range, IfMatch: etag }))
      .catch((err: unknown) => {
        throw isNotFound(err) ? new NotFoundError(this.uriFor(key), { cause: err }) : err;
      });
    if (!(out.Body instanceof Readable)) {
      throw new Error(`expected a Node stream as the body of ${this.uriFor(key)}, got ${typeof out.Body}`);
    }
    const end = out.ContentLength === undefined ? undefined : from + out.ContentLength;
    return { body: out.Body, etag: out.ETag, end };
  }

  private objectKey(key: string): string {
    validateKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }
}

interface OpenedBody {
  body: Readable;
  etag?: string;
  /** The byte after the last one this object has, when the server said. */
  end?: number;
}

/**
 * NoSuchKey from GetObject, a bare 404 from HeadObject (which has no body to name the error). A missing bucket is a
 * deployment mistake, not a missing object, so it keeps its own error.
 */
function isNotFound(err: unknown): boolean {
  const name = (err as { name?: string } | undefined)?.name;
  return name !== 'NoSuchBucket' && (name === 'NoSuchKey' || name === 'NotFound' || httpStatusOf(err) === 404);
}
