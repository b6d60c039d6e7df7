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
  if (problem) throw new Error(`invalid object key ${JSON.stringify(key)}: ${problem}`);
  return key;
}

/** A folder prefix for `list`/`deletePrefix`: '' (the root) or a valid key, with one trailing '/' tolerated. */
export function validatePrefix(prefix: string): string {
  if (prefix === '') return '';
  const folder = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  const problem = keyProblem(folder);
  if (problem) throw new Error(`invalid object prefix ${JSON.stringify(prefix)}: ${problem}`);
  return folder;
}

/** Rules of a whole key, then of each '/'-separated segment: the first one broken says why. */
const KEY_RULES: Array<[(key: string) => boolean, string]> = [
  [(key) => key.includes('\0'), 'it contains a NUL character'],
  [(key) => key.includes('\\'), "it contains a backslash; use '/' between segments"],
  [(key) => key.startsWith('/'), 'it is absolute; keys are relative to the store root'],
  [(key) => Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES, `it is longer than ${MAX_KEY_BYTES} bytes`],
];
const SEGMENT_RULES: Array<[(segment: string) => boolean, (segment: string) => string]> = [
  [(s) => s === '', () => "it has an empty segment ('//' or a trailing '/')"],
  [(s) => s === '.' || s === '..', (s) => `it has a '${s}' segment`],
  [(s) => s.endsWith(TEMP_SUFFIX), () => `segments ending in '${TEMP_SUFFIX}' are reserved for temporary files`],
];

/** Why `key` cannot name an object, or undefined when it can. */
export function keyProblem(key: string): string | undefined {
  if (typeof key !== 'string' || key === '') return 'it is empty';
  const broken = KEY_RULES.find(([breaks]) => breaks(key));
  if (broken) return broken[1];
  for (const segment of key.split('/')) {
    const rule = SEGMENT_RULES.find(([breaks]) => breaks(segment));
    if (rule) return rule[1](segment);
  }
  return undefined;
}
