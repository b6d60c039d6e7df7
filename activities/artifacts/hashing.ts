import canonicalize from 'canonicalize';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** The sha256 of a stream's bytes (a local file, a stored object), read as it flows. */
export async function sha256Of(chunks: AsyncIterable<unknown>): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of chunks) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export const sha256File = (path: string): Promise<string> => sha256Of(createReadStream(path));

/**
 * Key order must not change a hash: objects are serialised as RFC 8785 canonical JSON (sorted keys, undefined members
 * left out), which is what the first version wrote by hand for the plain objects, strings and numbers steps hash.
 */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new Error('cannot hash an undefined value');
  return text;
}

export const hashInputs = (inputs: unknown): string => sha256(canonicalJson(inputs));
