import canonicalize from 'canonicalize';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

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
