import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { badUri, RUN_STORE_SETTING } from './errors';
import { validateKey, validatePrefix } from './keys';
import { localPathOf, schemeOf } from './file-roots';
import { LocalStore } from './local-store';
import type { ObjectStore } from './object-store';
import { outageToleranceMs, type ProbeMode } from './outage';
import { S3Store } from './s3-store';
import { s3ClientFor, s3SettingsFromEnv } from './s3-client';

export interface OpenOptions {
  /**
   * The setting the URI came from (`input.store`, `input.dataset`, `input.evaluation.benchmarks[0].uri`...), named
   * by every error that retrying cannot fix. Defaults to the run's store.
   */
  setting?: string;
  /**
   * 'fail-fast' where the setup is first checked (preflight, `pift validate`): an endpoint that never answers within a
   * short probe is a wrong setting. Every other caller keeps the default, 'wait': outages are waited out.
   */
  probe?: ProbeMode;
}

/**
 * Opens the store rooted at `uri`: `file:///abs/dir`, `s3://bucket/optional/prefix`, or a plain directory path
 * (resolved against the working directory). S3 endpoint, region and path style come from `env`
 * (PIFT_S3_ENDPOINT, PIFT_S3_REGION or AWS_REGION, PIFT_S3_FORCE_PATH_STYLE); credentials from AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY in `env` or else the AWS SDK's default provider chain; how long an outage is waited out
 * from PIFT_OUTAGE_TOLERANCE. A URI that names no store is the error of `options.setting` (see settingError).
 */
export function openStore(uri: string, env: NodeJS.ProcessEnv = process.env, options: OpenOptions = {}): ObjectStore {
  const setting = options.setting ?? RUN_STORE_SETTING;
  if (uri.trim() === '') {
    throw badUri(setting, 'store location is empty; give a directory, file:///abs/dir or s3://bucket/prefix');
  }
  if (schemeOf(uri) === 's3') {
    const { bucket, prefix } = splitS3Uri(uri, setting);
    const settings = s3SettingsFromEnv(env);
    return new S3Store({
      client: s3ClientFor(settings),
      bucket,
      prefix,
      setting,
      endpoint: settings.endpoint,
      outageToleranceMs: outageToleranceMs(env),
      probe: options.probe,
    });
  }
  const dir = localPathOf(uri, setting);
  if (dir !== undefined) return new LocalStore(dir, { setting });
  throw badUri(
    setting,
    `unsupported store URI ${JSON.stringify(uri)}: use a directory, file:///abs/dir or s3://bucket/prefix`,
  );
}

/**
 * Splits the URI of one object into the store that holds it (its parent folder) and its key, so that
 * `openStore(root).uriFor(key)` names the same object again.
 */
export function parseObjectUri(uri: string, options: OpenOptions = {}): { root: string; key: string } {
  const setting = options.setting ?? RUN_STORE_SETTING;
  if (uri.endsWith('/') || uri.endsWith(path.sep)) {
    throw badUri(setting, `object URI ${JSON.stringify(uri)} names a folder, not an object (drop the trailing '/')`);
  }
  const s3 = schemeOf(uri) === 's3';
  const file = s3 || uri.trim() === '' ? undefined : localPathOf(uri, setting);
  if (!s3 && file === undefined) {
    throw badUri(
      setting,
      `unsupported object URI ${JSON.stringify(uri)}: use a path, file:///abs/file or s3://bucket/key`,
    );
  }
  const slash = uri.lastIndexOf('/');
  const [root, key] = file
    ? [pathToFileURL(path.dirname(file)).href, path.basename(file)]
    : [uri.slice(0, slash), uri.slice(slash + 1)];
  if (s3 && slash < 's3://'.length)
    throw badUri(setting, `object URI ${JSON.stringify(uri)} names a bucket, not an object`);
  if (s3) splitS3Uri(root, setting);
  return { root, key: checked(setting, uri, () => validateKey(key)) };
}

/** Opens whatever holds the object at `uri`, so a dataset is read the same way from a path, file:// or s3://. */
export function openObject(
  uri: string,
  env: NodeJS.ProcessEnv = process.env,
  options: OpenOptions = {},
): { store: ObjectStore; key: string } {
  const { root, key } = parseObjectUri(uri, options);
  return { store: openStore(root, env, options), key };
}

function splitS3Uri(uri: string, setting: string): { bucket: string; prefix: string } {
  const [bucket, ...folders] = uri.slice('s3://'.length).split('/');
  const prefix = folders.join('/');
  if (!/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw badUri(setting, `invalid S3 bucket name ${JSON.stringify(bucket)} in ${JSON.stringify(uri)}`);
  }
  return { bucket, prefix: checked(setting, uri, () => validatePrefix(prefix)) };
}

/** Key and path rules throw plain errors; in a URI they are the setting's problem. */
function checked<T>(setting: string, uri: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw badUri(setting, `${JSON.stringify(uri)}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
