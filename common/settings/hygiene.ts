// What no workflow input may hold, whatever its field: secrets (the input is kept in Temporal's history and shown by
// the Web UI) and more bytes than Temporal takes in one payload. Workflow-safe: no Node built-ins here.
import { InvalidDataError } from '../failures';

/**
 * The largest input, in UTF-8 bytes of its JSON. Temporal refuses a payload over 2 MB (and a request over 4 MB), and
 * the input is also repeated in the first activities' payloads; a settings file is a few kilobytes.
 */
export const MAX_INPUT_BYTES = 256 * 1024;

/** Shapes of provider keys, by their documented prefixes. */
const KEY_SHAPES: Array<[RegExp, string]> = [
  [/(?:^|[^A-Za-z0-9])sk-[A-Za-z0-9_-]{16,}/, 'an API key (sk-…)'],
  [/(?:^|[^A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])/, 'an AWS access key id (AKIA…)'],
  [/(?:^|[^A-Za-z0-9])hf_[A-Za-z0-9]{30,}/, 'a Hugging Face token (hf_…)'],
  [/(?:^|[^A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{30,}/, 'a GitHub token'],
];

/**
 * A run of token characters this long, mixed and as varied as random text, is taken for a key of unknown kind. Path
 * and name separators (`/`, `-`, `.`) end a run: a folder name with a random suffix is no key.
 */
const LONG_TOKEN = /[A-Za-z0-9+=_]{32,}/g;
const MIN_BITS_PER_CHAR = 4.2;

function bitsPerChar(token: string): number {
  const counts = new Map<string, number>();
  for (const ch of token) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) bits -= (n / token.length) * Math.log2(n / token.length);
  return bits;
}

/** Why `value` looks like a secret, or undefined. Hex digests (commit ids, sha256) are not: 16 symbols at most. */
export function secretShape(value: string): string | undefined {
  for (const [shape, what] of KEY_SHAPES) if (shape.test(value)) return what;
  for (const [token] of value.matchAll(LONG_TOKEN)) {
    const mixed = /[a-z]/.test(token) && /[A-Z]/.test(token) && /[0-9]/.test(token);
    if (mixed && bitsPerChar(token) >= MIN_BITS_PER_CHAR) return 'a long random token (a key or password?)';
  }
  return undefined;
}

/** `scheme://user[:password]@host…`: credentials in a URI, which history, logs and `status` would repeat. */
const URI_CREDENTIALS = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#\s]*@/;

/** Every string of the input with its field name (`input.scorer.model`, `input.evaluation.benchmarks[0].uri`). */
function* stringsOf(value: unknown, field: string): Generator<[string, string]> {
  if (typeof value === 'string') yield [field, value];
  else if (Array.isArray(value)) for (const [i, v] of value.entries()) yield* stringsOf(v, `${field}[${i}]`);
  else if (value !== null && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) yield* stringsOf(v, `${field}.${k}`);
}

/**
 * Refuses an input too large for Temporal, or holding a key-shaped string or a URI with credentials in any field. The
 * message names the field and never the value. Checked before a run starts (the input would be in its history) and
 * again by the run itself, for runs started by other clients.
 */
export function checkInputHygiene(raw: unknown): void {
  const bytes = new TextEncoder().encode(JSON.stringify(raw) ?? '').length;
  if (bytes > MAX_INPUT_BYTES) {
    throw new InvalidDataError(
      `input: ${bytes} bytes of JSON, over the limit of ${MAX_INPUT_BYTES} (Temporal keeps the input in every run's ` +
        'history; large data belongs in a file the input names)',
      { field: 'input' },
    );
  }
  for (const [field, value] of stringsOf(raw, 'input')) {
    if (URI_CREDENTIALS.test(value)) {
      throw new InvalidDataError(
        `${field}: the URI carries credentials (user or password before "@"); give them to the workers' ` +
          'environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, HF_TOKEN) instead, never in the input',
        { field },
      );
    }
    const shape = secretShape(value);
    if (shape) {
      throw new InvalidDataError(
        `${field}: looks like ${shape}; keys belong in the workers' environment (OPENAI_API_KEY, ` +
          'PIFT_OPENAI_API_KEY, HF_TOKEN, AWS_*), never in the input, which Temporal keeps in history',
        { field },
      );
    }
  }
}
