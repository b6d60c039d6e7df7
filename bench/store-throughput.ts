/**
 * Upload/download throughput of the local store against SeaweedFS S3 on loopback, side by side:
 *   npx ts-node bench/store-throughput.ts [--mib 64] [--files 64] [--concurrency 8]
 * The S3 numbers include SigV4 signing, HTTP and SeaweedFS's own disk writes, so the ratio is the price of
 * switching a single-machine deployment from a directory to a bucket. Last, `s3_request_overhead_ratio=`: the time of
 * small requests (HEAD) through S3Store over the same requests through a bare S3Client, one after another: the price of
 * the store's outage handling while the store is healthy (a retry schedule rebuilt per call once made it 15x).
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import pLimit from 'p-limit';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { type ObjectStore, openStore, s3ClientFor, s3SettingsFromEnv } from '../store';
import { startS3Server } from '../test/helpers/s3-server';

const MiB = 1024 * 1024;

interface Case {
  label: string;
  files: string[];
  bytes: number;
}

interface Result {
  uploadMBps: number;
  downloadMBps: number;
}

async function run() {
  const { values } = parseArgs({
    options: {
      mib: { type: 'string', default: '64' },
      files: { type: 'string', default: '64' },
      concurrency: { type: 'string', default: '8' },
    },
  });
  const totalMiB = Number(values.mib);
  const fileCount = Number(values.files);
  const concurrency = Number(values.concurrency);
  const fileMiB = totalMiB / fileCount;

  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'pift-bench-'));
  const s3 = await startS3Server();
  try {
    const cases = [
      await makeCase(scratch, `1 x ${totalMiB} MiB`, 1, totalMiB * MiB),
      await makeCase(scratch, `${fileCount} x ${fmt(fileMiB)} MiB`, fileCount, fileMiB * MiB),
    ];
    const stores: Array<[string, ObjectStore]> = [
      ['local', openStore(path.join(scratch, 'local-store'))],
      ['s3', openStore(`s3://${s3.bucket}/bench`, s3.env)],
    ];

    console.log(`${os.cpus().length} cores, concurrency ${concurrency}; MB/s = 10^6 bytes per second\n`);
    console.log(pad('case', 18) + pad('store', 10) + pad('upload MB/s', 14) + pad('download MB/s', 14));
    for (const c of cases) {
      const results: Record<string, Result> = {};
      for (const [name, store] of stores) {
        results[name] = await measure(store, c, path.join(scratch, `down-${name}`), concurrency);
        const { uploadMBps, downloadMBps } = results[name];
        console.log(pad(c.label, 18) + pad(name, 10) + pad(fmt(uploadMBps), 14) + pad(fmt(downloadMBps), 14));
      }
      const up = results.local.uploadMBps / results.s3.uploadMBps;
      const down = results.local.downloadMBps / results.s3.downloadMBps;
      console.log(pad(c.label, 18) + pad('local/s3', 10) + pad(`${fmt(up)}x`, 14) + pad(`${fmt(down)}x`, 14));
    }
    console.log(`s3_request_overhead_ratio=${fmt(await requestOverhead(stores[1][1], s3.env, s3.bucket))}`);
  } finally {
    await s3.stop();
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

/** Seconds of 200 HEADs through the store over 200 through a bare client, alternating rounds so load hits both. */
async function requestOverhead(store: ObjectStore, env: NodeJS.ProcessEnv, bucket: string): Promise<number> {
  await store.put('overhead/x', 'x');
  const client = s3ClientFor(s3SettingsFromEnv(env));
  const timed = async (head: () => Promise<unknown>) => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < 200; i++) await head();
    return Number(process.hrtime.bigint() - start);
  };
  let ours = 0;
  let bare = 0;
  for (let round = 0; round < 3; round++) {
    ours += await timed(() => store.head('overhead/x'));
    bare += await timed(() => client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'bench/overhead/x' })));
  }
  client.destroy();
  return ours / bare;
}

async function makeCase(scratch: string, label: string, count: number, size: number): Promise<Case> {
  const dir = path.join(scratch, `src-${count}`);
  await fs.mkdir(dir);
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const file = path.join(dir, `part-${i}.bin`);
    await fs.writeFile(file, randomBytes(Math.round(size))); // random, so nothing along the way can compress it
    files.push(file);
  }
  return { label, files, bytes: Math.round(size) * count };
}

async function measure(store: ObjectStore, c: Case, downloadDir: string, concurrency: number): Promise<Result> {
  const limit = pLimit(concurrency);
  const prefix = `bench-${c.files.length}`;
  const keyOf = (file: string) => `${prefix}/${path.basename(file)}`;

  let start = process.hrtime.bigint();
  await Promise.all(c.files.map((file) => limit(() => store.putFile(keyOf(file), file))));
  const uploadS = Number(process.hrtime.bigint() - start) / 1e9;

  start = process.hrtime.bigint();
  const download = (file: string) => store.getFile(keyOf(file), path.join(downloadDir, path.basename(file)));
  await Promise.all(c.files.map((file) => limit(() => download(file))));
  const downloadS = Number(process.hrtime.bigint() - start) / 1e9;

  await store.deletePrefix(prefix);
  await fs.rm(downloadDir, { recursive: true, force: true });
  return { uploadMBps: c.bytes / 1e6 / uploadS, downloadMBps: c.bytes / 1e6 / downloadS };
}

function pad(text: string, width: number): string {
  return text.padEnd(width);
}

function fmt(n: number): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
