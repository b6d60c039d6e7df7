import { hash } from 'node:crypto';
import { sha256 } from '../artifacts/hashing';

/**
 * The seeded order of segmentation (rows sorted by sha256 of `<salt>:<id>`, see seededOrder) for many rows without
 * keeping their ids or 64-character keys: each row keeps its key's first 8 bytes as two 32-bit numbers, and only rows
 * whose first 8 bytes are equal have their full keys computed again, so the order is exactly seededOrder's.
 */

export const seededKey = (salt: string, id: string): string => sha256(`${salt}:${id}`);

const digestOf = (salt: string, id: string): Buffer => hash('sha256', `${salt}:${id}`, 'buffer');

/** The key's first 6 bytes as a number (exact): a row whose prefix is larger has the larger key. */
export const keyPrefix = (salt: string, id: string): number => digestOf(salt, id).readUIntBE(0, 6);
export const prefixOfHex = (key: string): number => parseInt(key.slice(0, 12), 16);

/** The first 8 bytes of the sort key of each slot (a row's place among the rows being ordered). */
export class KeyPrefixes {
  private readonly words: Uint32Array;

  constructor(size: number) {
    this.words = new Uint32Array(size * 2);
  }

  set(slot: number, salt: string, id: string): void {
    const digest = digestOf(salt, id);
    this.words[slot * 2] = digest.readUInt32BE(0);
    this.words[slot * 2 + 1] = digest.readUInt32BE(4);
  }

  /**
   * `members` (slots, in the order seededOrder would be given them) in seeded order. `fullKey(slot)` is asked only
   * when two first-8-byte prefixes are equal; equal full keys keep the given order, as seededOrder's stable sort does.
   */
  order(members: Uint32Array, fullKey: (slot: number) => string): Uint32Array {
    const w = this.words;
    const index = new Uint32Array(members.length);
    for (let i = 0; i < index.length; i++) index[i] = i;
    index.sort((i, j) => {
      const a = members[i];
      const b = members[j];
      const d = w[a * 2] - w[b * 2] || w[a * 2 + 1] - w[b * 2 + 1];
      if (d !== 0) return d;
      const ka = fullKey(a);
      const kb = fullKey(b);
      return ka < kb ? -1 : ka > kb ? 1 : i - j;
    });
    for (let i = 0; i < index.length; i++) index[i] = members[index[i]];
    return index;
  }
}
