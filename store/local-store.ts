import { promises as fs, readFile as readFileCallback } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { fileChunks, hashedCopy, linkIfAbsent, writeBytesAtomically, writeFileAtomically } from './local-files';
import { mapDiskFull, RUN_STORE_SETTING } from './errors';
import { TEMP_SUFFIX, validateKey, validatePrefix } from './keys';
import { NotFoundError, ObjectStore, type PutOptions, type WrittenObject } from './object-store';

// The callback API, not fs.promises: a FileHandle per read cost several times the read of a small object (an
// answer-cache entry, looked up for every row a step scores).
const readFile = promisify(readFileCallback);

/** A directory used as an object store: the embedded default, needing no server. */
export class LocalStore extends ObjectStore {
  readonly root: string;
  private readonly dir: string;
  /** The setting that placed the store here, named when its disk is full. */
  private readonly setting: string;

  constructor(dir: string, options: { setting?: string } = {}) {
    super();
    this.dir = path.resolve(dir);
    this.root = pathToFileURL(this.dir).href;
    this.setting = options.setting ?? RUN_STORE_SETTING;
  }

  uriFor(key: string): string {
    return pathToFileURL(this.pathFor(key)).href;
  }

  async put(key: string, body: string | Uint8Array, options: PutOptions = {}): Promise<void> {
    const target = this.pathFor(key);
    await mapDiskFull(this.dir, this.setting, () => writeBytesAtomically(target, body, options.durable ?? true));
  }

  async putIfAbsent(key: string, body: string): Promise<boolean> {
    const target = this.pathFor(key);
    return mapDiskFull(this.dir, this.setting, () => linkIfAbsent(target, body));
  }

  async putFile(key: string, localPath: string): Promise<WrittenObject> {
    return this.copyIn(localPath, key);
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    await this.mapNotFound(fromKey, () => this.copyIn(this.pathFor(fromKey), toKey));
  }

  async get(key: string): Promise<Buffer> {
    return this.mapNotFound(key, () => readFile(this.pathFor(key)));
  }

  /** Without a NotFoundError made per miss: the answer cache looks up every row a step scores. */
  override async findText(key: string): Promise<string | undefined> {
    return (await unlessAbsent(readFile(this.pathFor(key))))?.toString('utf8');
  }

  async getStream(key: string): Promise<Readable> {
    // Opened here, not lazily by the stream, so a missing object is a NotFoundError and not a stream 'error' event.
    const handle = await this.mapNotFound(key, () => fs.open(this.pathFor(key), 'r'));
    return handle.createReadStream();
  }

  protected async openSource(key: string): Promise<AsyncIterable<Uint8Array>> {
    if (!(await this.exists(key))) throw new NotFoundError(this.uriFor(key));
    return fileChunks(this.pathFor(key));
  }

  async head(key: string): Promise<{ size: number } | null> {
    const stat = await unlessAbsent(fs.stat(this.pathFor(key)));
    return stat?.isFile() ? { size: stat.size } : null;
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.pathFor(key), { force: true });
  }

  async list(prefix: string): Promise<string[]> {
    const folder = validatePrefix(prefix);
    const keys: string[] = [];
    await this.walk(folder === '' ? this.dir : this.pathFor(folder), folder, keys);
    return keys.sort();
  }

  protected async deleteFolder(folder: string): Promise<void> {
    const dir = this.pathFor(folder);
    // A file at exactly `prefix` is an object, not a folder, and is kept (same as on S3).
    const stat = await unlessAbsent(fs.stat(dir));
    if (stat?.isDirectory()) {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  private pathFor(key: string): string {
    const full = path.resolve(this.dir, validateKey(key));
    // validateKey already rules out '..' and absolute keys; this is the last line of defence.
    if (!full.startsWith(this.dir + path.sep)) {
      throw new Error(`object key ${JSON.stringify(key)} resolves outside the store root ${this.root}`);
    }
    return full;
  }

  /** Copies the local file `from` into `key`: the same chunked, hashed and flushed copy for uploads and copies. */
  private async copyIn(from: string, key: string): Promise<WrittenObject> {
    const target = this.pathFor(key);
    return mapDiskFull(this.dir, this.setting, () =>
      writeFileAtomically(target, (tmp) => hashedCopy(fileChunks(from), tmp)),
    );
  }

  private async walk(dir: string, keyPrefix: string, keys: string[]): Promise<void> {
    const entries = await unlessAbsent(fs.readdir(dir, { withFileTypes: true }));
    for (const entry of entries ?? []) {
      if (entry.name.endsWith(TEMP_SUFFIX)) continue;
      const key = keyPrefix === '' ? entry.name : `${keyPrefix}/${entry.name}`;
      const full = path.join(dir, entry.name);
      // Follow symlinks so a dataset linked into the store is listed like a copied one.
      const isDir =
        entry.isDirectory() || (entry.isSymbolicLink() && (await fs.stat(full).catch(() => null))?.isDirectory());
      if (isDir) {
        await this.walk(full, key, keys);
      } else if (entry.isFile() || entry.isSymbolicLink()) {
        keys.push(key);
      }
    }
  }

  private async mapNotFound<T>(key: string, read: () => Promise<T>): Promise<T> {
    return read().catch((err: unknown) => {
      throw isNotFoundCode(err) ? new NotFoundError(this.uriFor(key), { cause: err }) : err;
    });
  }
}

/** ENOTDIR and EISDIR too: a key below a file, or a key that is really a folder, names no object. */
function isNotFoundCode(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

/** What `read` gives, or null when what it reads is absent. */
const unlessAbsent = <T>(read: Promise<T>) =>
  read.catch((err: unknown) => (isNotFoundCode(err) ? null : Promise.reject(err)));
