import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { validateKey, validatePrefix } from './keys';
import { LocalStore } from './local-store';
import type { ObjectStore } from './object-store';
import { S3Store } from './s3-store';
import { s3ClientFor, s3SettingsFromEnv } from './s3-client';

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//;

/**
 * Opens the store rooted at `uri`: `file:///abs/dir`, `s3://bucket/optional/prefix`, or a plain directory path
 * (resolved against the working directory). S3 endpoint, region and path style come from `env`
 * (PIFT_S3_ENDPOINT, PIFT_S3_REGION or AWS_REGION, PIFT_S3_FORCE_PATH_STYLE); credentials from AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY in `env` or else the AWS SDK's default provider chain.
 */
export function openStore(uri: string, env: NodeJS.ProcessEnv = process.env): ObjectStore {
  const scheme = SCHEME.exec(uri)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    if (uri.trim() === '') {
      throw new Error('store location is empty; give a directory, file:///abs/dir or s3://bucket/prefix');
    }
    return new LocalStore(path.resolve(uri));
  }
  if (scheme === 'file') {
    return new LocalStore(fileURLToPath(uri));
  }
  if (scheme === 's3') {
    const { bucket, prefix } = splitS3Uri(uri);
    return new S3Store({ client: s3ClientFor(s3SettingsFromEnv(env)), bucket, prefix });
  }
  throw new Error(
    `unsupported store URI ${JSON.stringify(uri)}: use a directory, file:///abs/dir or s3://bucket/prefix`,
  );
}

/**
 * Splits the URI of one object into the store that holds it (its parent folder) and its key, so that
 * `openStore(root).uriFor(key)` names the same object again.
 */
export function parseObjectUri(uri: string): { root: string; key: string } {
  if (uri.endsWith('/') || uri.endsWith(path.sep)) {
    throw new Error(`object URI ${JSON.stringify(uri)} names a folder, not an object`);
  }
  const scheme = SCHEME.exec(uri)?.[1]?.toLowerCase();
  if (scheme === 's3') {
    const { bucket, prefix } = splitS3Uri(uri);
    if (prefix === '') {
      throw new Error(`object URI ${JSON.stringify(uri)} names a bucket, not an object`);
    }
    const slash = prefix.lastIndexOf('/');
    return {
      root: slash < 0 ? `s3://${bucket}` : `s3://${bucket}/${prefix.slice(0, slash)}`,
      key: prefix.slice(slash + 1),
    };
  }
  let filePath: string;
  if (scheme === 'file') {
    filePath = fileURLToPath(uri);
  } else if (scheme === undefined && uri.trim() !== '') {
    filePath = path.resolve(uri);
  } else {
    throw new Error(`unsupported object URI ${JSON.stringify(uri)}: use a path, file:///abs/file or s3://bucket/key`);
  }
  return { root: pathToFileURL(path.dirname(filePath)).href, key: validateKey(path.basename(filePath)) };
}

/** Opens whatever holds the object at `uri`, so a dataset is read the same way from a path, file:// or s3://. */
export function openObject(uri: string, env: NodeJS.ProcessEnv = process.env): { store: ObjectStore; key: string } {
  const { root, key } = parseObjectUri(uri);
  return { store: openStore(root, env), key };
}

function splitS3Uri(uri: string): { bucket: string; prefix: string } {
  const rest = uri.replace(SCHEME, '');
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const prefix = slash < 0 ? '' : rest.slice(slash + 1);
  if (!/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new Error(`invalid S3 bucket name ${JSON.stringify(bucket)} in ${JSON.stringify(uri)}`);
  }
  return { bucket, prefix: validatePrefix(prefix) };
}
