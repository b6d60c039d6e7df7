/**
 * Key rules shared by both stores. A key that passes can be joined onto a directory without escaping it and maps to
 * the same object name on S3, so a key that works locally also works in a bucket.
 */

/** Marks in-flight temporary files; no key may end with it, so `list` can skip them safely. */
export const TEMP_SUFFIX = '.pift-tmp';

/** S3's own limit on a key, in UTF-8 bytes. */
const MAX_KEY_BYTES = 1024;

export function validateKey(key: string): string {
  const problem = keyProblem(key);
  if (problem) {
    throw new Error(`invalid object key ${JSON.stringify(key)}: ${problem}`);
  }
  return key;
}

/** A folder prefix for `list`/`deletePrefix`: '' (the root) or a valid key, with one trailing '/' tolerated. */
export function validatePrefix(prefix: string): string {
  const folder = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  if (folder === '' && prefix === '') {
    return '';
  }
  const problem = keyProblem(folder);
  if (problem) {
    throw new Error(`invalid object prefix ${JSON.stringify(prefix)}: ${problem}`);
  }
  return folder;
}

/** Why `key` cannot name an object, or undefined when it can. */
export function keyProblem(key: string): string | undefined {
  if (typeof key !== 'string' || key === '') {
    return 'it is empty';
  }
  if (key.includes('\0')) {
    return 'it contains a NUL character';
  }
  if (key.includes('\\')) {
    return "it contains a backslash; use '/' between segments";
  }
  if (key.startsWith('/')) {
    return 'it is absolute; keys are relative to the store root';
  }
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    return `it is longer than ${MAX_KEY_BYTES} bytes`;
  }
  for (const segment of key.split('/')) {
    if (segment === '') {
      return "it has an empty segment ('//' or a trailing '/')";
    }
    if (segment === '.' || segment === '..') {
      return `it has a '${segment}' segment`;
    }
    if (segment.endsWith(TEMP_SUFFIX)) {
      return `segments ending in '${TEMP_SUFFIX}' are reserved for temporary files`;
    }
  }
  return undefined;
}
