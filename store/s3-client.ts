import { S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { storeDefaults } from './defaults';

/** How to reach an S3-compatible service. Read from the environment only, never from workflow input. */
export interface S3Settings {
  /** Custom endpoint for MinIO, SeaweedFS, R2...; undefined for AWS itself. */
  endpoint?: string;
  region: string;
  /** `http://host/bucket/key` instead of `http://bucket.host/key`; what most self-hosted servers need. */
  forcePathStyle: boolean;
  /** Static keys found in the given environment; undefined lets the SDK's default provider chain decide. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

export function s3SettingsFromEnv(env: NodeJS.ProcessEnv): S3Settings {
  const setting = (name: string) => env[name]?.trim() || undefined;
  const endpoint = setting('PIFT_S3_ENDPOINT');
  const forcePathStyle = setting('PIFT_S3_FORCE_PATH_STYLE');
  const accessKeyId = setting('AWS_ACCESS_KEY_ID');
  const secretAccessKey = setting('AWS_SECRET_ACCESS_KEY');
  return {
    endpoint,
    region: setting('PIFT_S3_REGION') ?? setting('AWS_REGION') ?? storeDefaults.s3Region,
    forcePathStyle: forcePathStyle === undefined ? endpoint !== undefined : /^(1|true|yes)$/i.test(forcePathStyle),
    // Passing a non-process env (a test server's, a child's) must still authenticate with that env's keys.
    credentials:
      accessKeyId && secretAccessKey
        ? { accessKeyId, secretAccessKey, sessionToken: setting('AWS_SESSION_TOKEN') }
        : undefined,
  };
}

const clients = new Map<string, S3Client>();

/** One client per service and identity: clients hold connection pools, so stores opened per call share them. */
export function s3ClientFor(settings: S3Settings): S3Client {
  // Hashed so the cache never holds a secret in clear; different secrets must not share a client.
  const cacheKey = createHash('sha256').update(JSON.stringify(settings)).digest('hex');
  let client = clients.get(cacheKey);
  if (!client) {
    client = new S3Client({
      ...settings,
      // A stalled connection must fail (and be retried) rather than hold a GPU activity forever; the timeout is
      // for socket inactivity, so long streaming transfers are unaffected.
      requestHandler: { connectionTimeout: 15_000, requestTimeout: 120_000 },
    });
    clients.set(cacheKey, client);
  }
  return client;
}
