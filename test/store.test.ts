import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'mocha';
import {
  IntegrityError,
  LocalStore,
  NotFoundError,
  type ObjectStore,
  openObject,
  openStore,
  parseObjectUri,
  S3Store,
  s3ClientFor,
  s3SettingsFromEnv,
  storeDefaults,
} from '../store';
import { S3ServiceException } from '@aws-sdk/client-s3';
import { WorkerMisconfiguredError } from '../common/failures';
import { classifyS3Error, isTransient } from '../store/errors';
import { TEMP_SUFFIX } from '../store/keys';
import { type S3Server, sharedS3 } from './helpers/s3-server';

const BAD_KEYS = ['../x', 'a/../../x', 'a//b', '/abs', '', 'a/./b', 'a\\b', 'a\0b', 'a/', `a/b${TEMP_SUFFIX}`];

/** The same behaviour is demanded of every backend, so workflows can switch stores by URI alone. */
function describeStoreContract(
  name: string,
  open: () => Promise<{ store: ObjectStore; cleanup?: () => Promise<void> }>,
) {
  describe(`ObjectStore contract: ${name}`, () => {
    let store: ObjectStore;
    let cleanup: (() => Promise<void>) | undefined;
    let scratch: string;

    before(async () => {
      ({ store, cleanup } = await open());
      scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'pift-store-test-'));
    });
    after(async () => {
      await fs.rm(scratch, { recursive: true, force: true });
      await cleanup?.();
    });

    it('round-trips strings, bytes and empty objects', async () => {
      await store.put('rt/text.txt', 'héllo wörld\n');
      await store.put('rt/bytes.bin', new Uint8Array([0, 1, 2, 255]));
      await store.put('rt/empty', '');
      assert.equal(await store.getText('rt/text.txt'), 'héllo wörld\n');
      assert.deepEqual([...(await store.get('rt/bytes.bin'))], [0, 1, 2, 255]);
      assert.equal((await store.get('rt/empty')).length, 0);
      assert.deepEqual(await store.head('rt/bytes.bin'), { size: 4 });
      assert.deepEqual(await store.head('rt/empty'), { size: 0 });
    });

    it('finds an object as text, and an absent one (a missing key, a key below an object) as undefined', async () => {
      await store.put('find/text.txt', 'héllo\n');
      assert.equal(await store.findText('find/text.txt'), 'héllo\n');
      assert.equal(await store.findText('find/absent.txt'), undefined);
      assert.equal(await store.findText('find/text.txt/below'), undefined);
      await assert.rejects(store.findText('../outside'), /invalid object key/);
    });

    it('gives a key to exactly one of several writers racing for it', async () => {
      const won = await Promise.all(Array.from({ length: 6 }, (_, i) => store.putIfAbsent('claim/owner', `${i}`)));
      assert.equal(won.filter(Boolean).length, 1);
      assert.equal(await store.getText('claim/owner'), String(won.indexOf(true)));
      assert.equal(await store.putIfAbsent('claim/owner', 'late'), false);
    });

    it('overwrites an existing object', async () => {
      await store.put('ow/x', 'first');
      await store.put('ow/x', 'second');
      assert.equal(await store.getText('ow/x'), 'second');
    });

    it('downloads into a local folder that was removed after an earlier download created it', async () => {
      // Workers delete their scratch folders after each step, and a retry downloads to the same path again.
      await store.put('dl/a', 'first');
      await store.put('dl/b', 'second');
      const into = path.join(scratch, 'downloads', 'again');
      await store.getFile('dl/a', path.join(into, 'a'));
      await fs.rm(path.join(scratch, 'downloads'), { recursive: true });
      await store.getFile('dl/b', path.join(into, 'b'));
      assert.equal(await fs.readFile(path.join(into, 'b'), 'utf8'), 'second');
      assert.deepEqual(await fs.readdir(into), ['b']);
    });

    it('writes an object that need not survive a crash like any other, whole and listed', async () => {
      await store.put('nd/x', 'first', { durable: false });
      await store.put('nd/x', 'second', { durable: false });
      assert.equal(await store.getText('nd/x'), 'second');
      assert.deepEqual(await store.list('nd'), ['nd/x']);
    });

    it('streams a file larger than one multipart part up and down intact', async () => {
      const size = storeDefaults.multipartPartSize + 1024 * 1024 + 17; // two parts on S3
      const source = path.join(scratch, 'big.bin');
      const data = randomBytes(size);
      await fs.writeFile(source, data);
      await store.putFile('big/model.bin', source);
      assert.deepEqual(await store.head('big/model.bin'), { size });

      const target = path.join(scratch, 'nested', 'dir', 'copy.bin');
      await store.getFile('big/model.bin', target);
      assert.equal(sha256(await fs.readFile(target)), sha256(data));
      assert.deepEqual(await fs.readdir(path.dirname(target)), ['copy.bin'], 'no temporary file left behind');
    });

    it('hashes a file as it uploads it, verifies a download as it streams, and copies inside the store', async () => {
      const data = randomBytes(storeDefaults.multipartPartSize + 4096); // two parts on S3
      const source = path.join(scratch, 'hashed.bin');
      await fs.writeFile(source, data);
      const sent = await store.putFile('hash/model.bin', source);
      assert.deepEqual(sent, { bytes: data.length, sha256: sha256(data) });

      const target = path.join(scratch, 'verified', 'model.bin');
      assert.deepEqual(await store.getFile('hash/model.bin', target, sent), sent);
      assert.equal(sha256(await fs.readFile(target)), sha256(data));

      const damaged = Buffer.from(data);
      damaged[100] ^= 0xff;
      await store.put('hash/damaged.bin', damaged);
      const bad = path.join(scratch, 'verified', 'damaged.bin');
      await assert.rejects(
        store.getFile('hash/damaged.bin', bad, sent),
        (e) => e instanceof IntegrityError && e.message.includes(store.uriFor('hash/damaged.bin')),
      );
      await assert.rejects(fs.stat(bad), { code: 'ENOENT' }, 'damaged bytes never land');
      assert.deepEqual(await fs.readdir(path.dirname(bad)), ['model.bin'], 'no temporary file left behind');

      await assert.rejects(store.putFile('hash/missing.bin', path.join(scratch, 'no-such-file')), { code: 'ENOENT' });

      await store.copy('hash/model.bin', 'hash/copy/model.bin');
      assert.equal(sha256(await store.get('hash/copy/model.bin')), sha256(data));
      await assert.rejects(store.copy('hash/absent.bin', 'hash/x'), NotFoundError);
    });

    it('opens an object as a byte stream, and an absent one as NotFoundError', async () => {
      const data = randomBytes(300 * 1024);
      await store.put('stream/data.bin', data);
      const chunks: Buffer[] = [];
      for await (const chunk of await store.getStream('stream/data.bin')) chunks.push(chunk as Buffer);
      assert.equal(sha256(Buffer.concat(chunks)), sha256(data));
      await assert.rejects(
        store.getStream('stream/absent.bin'),
        (e) => e instanceof NotFoundError && e.message.includes(store.uriFor('stream/absent.bin')),
      );
    });

    it('reports absent objects: head null, exists false, NotFoundError naming the URI', async () => {
      assert.equal(await store.head('absent/nothing.txt'), null);
      assert.equal(await store.exists('absent/nothing.txt'), false);
      await store.put('absent/present.txt', 'x');
      assert.equal(await store.exists('absent/present.txt'), true);

      const uri = store.uriFor('absent/nothing.txt');
      for (const read of [() => store.get('absent/nothing.txt'), () => store.getText('absent/nothing.txt')]) {
        await assert.rejects(read(), (err: unknown) => {
          assert.ok(err instanceof NotFoundError, `expected NotFoundError, got ${String(err)}`);
          assert.equal(err.uri, uri);
          assert.match(err.message, new RegExp(escapeRegExp(uri)));
          return true;
        });
      }
      const target = path.join(scratch, 'never', 'written.txt');
      await assert.rejects(store.getFile('absent/nothing.txt', target), NotFoundError);
      await assert.rejects(fs.stat(target), { code: 'ENOENT' });
    });

    it('lists every key below a folder, recursively and sorted', async () => {
      const keys = ['ls/runs/a/z.json', 'ls/runs/a/b/c.txt', 'ls/runs/a/b/a.txt', 'ls/runs/ab/x', 'ls/other'];
      for (const key of keys) {
        await store.put(key, key);
      }
      const underA = ['ls/runs/a/b/a.txt', 'ls/runs/a/b/c.txt', 'ls/runs/a/z.json'];
      assert.deepEqual(await store.list('ls/runs/a'), underA, "'runs/a' must not match 'runs/ab'");
      assert.deepEqual(await store.list('ls/runs/a/'), underA, 'a trailing slash means the same folder');
      assert.deepEqual(await store.list('ls'), [...keys].sort());
      assert.deepEqual(await store.list('ls/missing'), []);
      assert.ok((await store.list('')).includes('ls/other'), "'' lists the whole store");
    });

    it('deletes a folder and nothing beside it', async () => {
      for (const key of ['del/run/1', 'del/run/deep/2', 'del/run2/keep', 'del/keep']) {
        await store.put(key, 'x');
      }
      await store.deletePrefix('del/run');
      assert.deepEqual(await store.list('del'), ['del/keep', 'del/run2/keep']);
      await store.deletePrefix('del/never-existed');
      await assert.rejects(store.deletePrefix(''), /refusing to delete the whole store/);
    });

    it('deletes a single object, and an absent one quietly', async () => {
      await store.put('one/a', 'x');
      await store.put('one/a2', 'y');
      await store.delete('one/a');
      assert.deepEqual(await store.list('one'), ['one/a2']);
      await store.delete('one/never-existed');
    });

    it('rejects keys that are not plain relative paths, naming the key', async () => {
      for (const key of BAD_KEYS) {
        const named = new RegExp(`invalid object (key|prefix) ${escapeRegExp(JSON.stringify(key))}`);
        await assert.rejects(store.put(key, 'x'), named, `put(${JSON.stringify(key)})`);
        await assert.rejects(store.get(key), named, `get(${JSON.stringify(key)})`);
        await assert.rejects(store.head(key), named, `head(${JSON.stringify(key)})`);
        assert.throws(() => store.uriFor(key), named, `uriFor(${JSON.stringify(key)})`);
      }
      await assert.rejects(store.list('../x'), /invalid object prefix "..\/x"/);
      await assert.rejects(store.deletePrefix('a//b'), /invalid object prefix "a\/\/b"/);
    });
  });
}

describeStoreContract('local directory', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pift-local-store-'));
  return { store: new LocalStore(dir), cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
});

describeStoreContract('SeaweedFS S3', async () => {
  const s3 = await sharedS3();
  const store = openStore(`s3://${s3.bucket}/contract-${randomBytes(4).toString('hex')}`, s3.env);
  return { store };
});

describe('LocalStore', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pift-local-store-'));
  });
  after(() => fs.rm(dir, { recursive: true, force: true }));

  it('keeps objects as plain files under its root, with file:// URIs', async () => {
    const store = new LocalStore(dir);
    await store.put('a/b.txt', 'x');
    assert.equal(await fs.readFile(path.join(dir, 'a', 'b.txt'), 'utf8'), 'x');
    assert.equal(store.root, pathToFileURL(dir).href);
    assert.equal(store.uriFor('a/b.txt'), pathToFileURL(path.join(dir, 'a', 'b.txt')).href);
  });

  it('hides half-written temporary files from list', async () => {
    const store = new LocalStore(dir);
    await store.put('tmp/done', 'x');
    await fs.writeFile(path.join(dir, 'tmp', `.done.abc${TEMP_SUFFIX}`), 'half');
    assert.deepEqual(await store.list('tmp'), ['tmp/done']);
  });

  it('writes into a folder that was removed after an earlier write created it, leaving no temporary file', async () => {
    const store = new LocalStore(dir);
    await store.put('gone/a', 'x');
    await store.putFile('gone/f', path.join(dir, 'gone', 'a'));
    await fs.rm(path.join(dir, 'gone'), { recursive: true });
    await store.put('gone/b', 'y');
    assert.equal(await store.getText('gone/b'), 'y');
    await fs.rm(path.join(dir, 'gone'), { recursive: true });
    await store.putFile('gone/f', path.join(dir, 'a', 'b.txt'));
    assert.equal(await store.getText('gone/f'), 'x');
    assert.deepEqual(await fs.readdir(path.join(dir, 'gone')), ['f']);
  });

  it('treats a folder as no object', async () => {
    const store = new LocalStore(dir);
    await store.put('folder/child', 'x');
    assert.equal(await store.head('folder'), null);
    await assert.rejects(store.get('folder'), NotFoundError);
  });
});

describe('S3Store', () => {
  let s3: S3Server;
  before(async () => {
    s3 = await sharedS3();
  });

  it('copies an object bigger than one copy request part by part', async () => {
    const client = s3ClientFor(s3SettingsFromEnv(s3.env));
    const prefix = `copy-${randomBytes(4).toString('hex')}`;
    const partSize = 5 * 1024 * 1024; // S3's smallest part
    const store = new S3Store({
      client,
      bucket: s3.bucket,
      prefix,
      copyLimits: { singleMaxBytes: partSize, partSize },
    });
    const data = randomBytes(2 * partSize + 123);
    await store.put('big.bin', data);
    await store.copy('big.bin', 'copied/big.bin');
    assert.equal(sha256(await store.get('copied/big.bin')), sha256(data));
    await store.deletePrefix('copied');
  });

  it('follows continuation tokens when a listing spans several pages', async () => {
    const client = s3ClientFor(s3SettingsFromEnv(s3.env));
    const prefix = `pages-${randomBytes(4).toString('hex')}`;
    const store = new S3Store({ client, bucket: s3.bucket, prefix, listPageSize: 2 });
    const keys = ['p/1', 'p/2', 'p/3', 'p/4', 'p/5/6'];
    await Promise.all(keys.map((key) => store.put(key, key)));
    assert.deepEqual(await store.list('p'), keys);
    await store.deletePrefix('p');
    assert.deepEqual(await store.list('p'), []);
  });

  it('refuses requests signed with the wrong secret', async () => {
    const store = openStore(`s3://${s3.bucket}/auth`, { ...s3.env, AWS_SECRET_ACCESS_KEY: 'wrong-secret' });
    await assert.rejects(store.put('x', 'x'), (err: Error) => !(err instanceof NotFoundError));
  });

  it('sorts S3 replies: 501 and other answers are final, 5xx outages and throttling are waited out', () => {
    const reply = (name: string, status: number, message = name) =>
      new S3ServiceException({
        name,
        $fault: status >= 500 ? 'server' : 'client',
        $metadata: { httpStatusCode: status },
        message,
      });
    for (const status of [500, 502, 503, 504]) assert.equal(isTransient(reply('InternalError', status)), true);
    assert.equal(isTransient(reply('SlowDown', 503)), true);
    assert.equal(isTransient(reply('NotImplemented', 501)), false);
    assert.equal(isTransient(reply('AccessDenied', 403)), false);
  });

  it('names PIFT_S3_REGION when the bucket is in another region', () => {
    const where = { setting: 'input.store', bucket: 'b', operation: 'GET s3://b/k' };
    const redirect = new S3ServiceException({
      name: 'PermanentRedirect',
      $fault: 'client',
      $metadata: { httpStatusCode: 301 },
      message: 'The bucket you are attempting to access must be addressed using the specified endpoint.',
    });
    const malformed = new S3ServiceException({
      name: 'AuthorizationHeaderMalformed',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
      message: "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'",
    });
    for (const err of [redirect, malformed]) {
      const typed = classifyS3Error(err, where);
      assert.ok(typed instanceof WorkerMisconfiguredError);
      assert.equal(typed.setting, 'PIFT_S3_REGION');
    }
    assert.match(classifyS3Error(malformed, where)!.message, /eu-west-1/);
  });

  it('reads a dataset by its s3:// URI', async () => {
    const prefix = `datasets-${randomBytes(4).toString('hex')}`;
    await openStore(`s3://${s3.bucket}/${prefix}`, s3.env).put('demo/train.jsonl', '{"a":1}\n');
    const { store, key } = openObject(`s3://${s3.bucket}/${prefix}/demo/train.jsonl`, s3.env);
    assert.equal(key, 'train.jsonl');
    assert.equal(await store.getText(key), '{"a":1}\n');
  });
});

describe('openStore / parseObjectUri', () => {
  const env = { PIFT_S3_ENDPOINT: 'http://127.0.0.1:1', AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's' };

  it('opens file:// URIs and plain paths as local stores', () => {
    const abs = path.join(os.tmpdir(), 'pift-open-store');
    assert.equal(openStore(pathToFileURL(abs).href).root, pathToFileURL(abs).href);
    assert.equal(openStore(abs).root, pathToFileURL(abs).href);
    assert.equal(openStore('rel/dir').root, pathToFileURL(path.resolve('rel/dir')).href);
    assert.ok(openStore('rel/dir') instanceof LocalStore);
  });

  it('opens s3:// URIs with an optional prefix', () => {
    const store = openStore('s3://my-bucket/runs/exp1/', env);
    assert.ok(store instanceof S3Store);
    assert.equal(store.root, 's3://my-bucket/runs/exp1');
    assert.equal(store.uriFor('ckpt/a.bin'), 's3://my-bucket/runs/exp1/ckpt/a.bin');
    assert.equal(openStore('s3://my-bucket', env).uriFor('x'), 's3://my-bucket/x');
  });

  it('rejects unusable store URIs', () => {
    assert.throws(() => openStore(''), /empty/);
    assert.throws(() => openStore('gs://bucket/x'), /unsupported store URI/);
    assert.throws(() => openStore('s3://Bad_Bucket/x', env), /invalid S3 bucket name/);
    assert.throws(() => openStore('s3://bucket/a/../b', env), /invalid object prefix/);
  });

  it('splits object URIs into the parent store and the key', () => {
    assert.deepEqual(parseObjectUri('s3://bucket/data/train.jsonl'), { root: 's3://bucket/data', key: 'train.jsonl' });
    assert.deepEqual(parseObjectUri('s3://bucket/train.jsonl'), { root: 's3://bucket', key: 'train.jsonl' });
    assert.deepEqual(parseObjectUri('file:///x/y/train.jsonl'), { root: 'file:///x/y', key: 'train.jsonl' });
    assert.deepEqual(parseObjectUri('./data/demo/train.jsonl'), {
      root: pathToFileURL(path.resolve('data/demo')).href,
      key: 'train.jsonl',
    });
    for (const uri of ['s3://bucket/data/train.jsonl', 'file:///x/y/train.jsonl', 'data/demo/train.jsonl']) {
      const { store, key } = openObject(uri, env);
      assert.equal(store.uriFor(key), uri.startsWith('data/') ? pathToFileURL(path.resolve(uri)).href : uri);
    }
  });

  it('rejects object URIs that name no object', () => {
    assert.throws(() => parseObjectUri('s3://bucket'), /names a bucket/);
    assert.throws(() => parseObjectUri('s3://bucket/data/'), /names a folder/);
    assert.throws(() => parseObjectUri('dir/'), /names a folder/);
    assert.throws(() => parseObjectUri('https://example.com/x.jsonl'), /unsupported object URI/);
  });

  it('reads S3 settings from the environment with sensible defaults', () => {
    assert.deepEqual(s3SettingsFromEnv({}), {
      endpoint: undefined,
      region: 'us-east-1',
      forcePathStyle: false,
      credentials: undefined,
    });
    const custom = s3SettingsFromEnv({ ...env, AWS_REGION: 'eu-west-1' });
    assert.equal(custom.region, 'eu-west-1');
    assert.equal(custom.forcePathStyle, true, 'path style by default with a custom endpoint');
    assert.equal(s3SettingsFromEnv({ ...env, PIFT_S3_REGION: 'auto', AWS_REGION: 'x' }).region, 'auto');
    assert.equal(s3SettingsFromEnv({ ...env, PIFT_S3_FORCE_PATH_STYLE: 'false' }).forcePathStyle, false);
    assert.equal(s3ClientFor(custom), s3ClientFor(s3SettingsFromEnv({ ...env, AWS_REGION: 'eu-west-1' })));
    assert.notEqual(s3ClientFor(custom), s3ClientFor({ ...custom, region: 'eu-west-2' }));
  });
});

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
