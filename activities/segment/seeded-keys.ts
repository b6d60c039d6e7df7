import { hash } from 'node:crypto';
import { sha256 } from '../artifacts/hashing';

/**
 * The seeded order of segmentation (rows sorted by sha256 of `<salt>:<id>`, see seededOrder) for many rows without
 * keeping their ids or 64-character keys: each row keeps its key's first 4 bytes, and only rows whose first 4 bytes are
 * equal (about a hundred pairs among a million rows) have their full keys computed again, so the order is exactly
 * seededOrder's.
 */

export const seededKey = (salt: string, id: string): string => sha256(`${salt}:${id}`);

// Hex, not a Buffer: a million small Buffers are external memory that the garbage collector reclaims late.
const hexKey = (salt: string, id: string): string => hash('sha256', `${salt}:${id}`, 'hex');

/** The key's first 6 bytes as a number (exact): a row whose prefix is larger has the larger key. */
export const keyPrefix = (salt: string, id: string): number => parseInt(hexKey(salt, id).slice(0, 12), 16);
export const prefixOfHex = (key: string): number => parseInt(key.slice(0, 12), 16);

/** The first 4 bytes of the sort key of each slot (a row's place among the rows being ordered). */
export class KeyPrefixes {
  private readonly words: Uint32Array;

  constructor(size: number) {
    this.words = new Uint32Array(size);
  }

  set(slot: number, salt: string, id: string): void {
    this.words[slot] = parseInt(hexKey(salt, id).slice(0, 8), 16);
  }

  /**
   * `members` (slots, in the order seededOrder would be given them) in seeded order. `fullKey(slot)` is asked only
   * when two first-4-byte prefixes are equal; equal full keys keep the given order, as seededOrder's stable sort does.
   */
  order(members: Uint32Array, fullKey: (slot: number) => string): Uint32Array {
    const w = this.words;
    const index = new Uint32Array(members.length);
    for (let i = 0; i < index.length; i++) index[i] = i;
    index.sort((i, j) => {
      const a = members[i];
      const b = members[j];
      const d = w[a] - w[b];
      if (d !== 0) return d;
      const ka = fullKey(a);
      const kb = fullKey(b);
      return ka < kb ? -1 : ka > kb ? 1 : i - j;
    });
    for (let i = 0; i < index.length; i++) index[i] = members[index[i]];
    return index;
  }
}
