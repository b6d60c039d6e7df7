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

/** Where a 64-bit number's low and high 32-bit words sit in a Uint32Array over the same bytes. */
const LOW = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? 0 : 1;
const HIGH = 1 - LOW;

/** The first 4 bytes of the sort key of each slot (a row's place among the rows being ordered). */
export class KeyPrefixes {
  private words: Uint32Array;

  constructor(size: number) {
    this.words = new Uint32Array(size);
  }

  set(slot: number, salt: string, id: string): void {
    this.words[slot] = parseInt(hexKey(salt, id).slice(0, 8), 16);
  }

  /**
   * `members` (slots, in the order seededOrder would be given them; undefined: every slot, ascending) in seeded
   * order. `fullKey(slot)` is asked only when two first-4-byte prefixes are equal; equal full keys keep the given
   * order, as seededOrder's stable sort does. With `last`, the prefixes are let go as soon as they are packed.
   *
   * Each member is packed as one 64-bit number, its prefix above its index, and sorted natively in place: a sort with
   * a comparator copies the array twice into the JavaScript heap (16 MB for a million rows) and calls back per pair.
   * The result is written over the packed numbers, so ordering n rows takes 8n bytes besides the prefixes.
   */
  order(members: Uint32Array | undefined, fullKey: (slot: number) => string, { last = false } = {}): Uint32Array {
    const prefixes = this.words;
    const n = members ? members.length : prefixes.length;
    const member = members ? (i: number) => members[i] : (i: number) => i;
    const packed = new BigUint64Array(n);
    // The same bytes as 32-bit words: no BigInt per row.
    const words = new Uint32Array(packed.buffer);
    for (let i = 0; i < n; i++) {
      words[2 * i + LOW] = i;
      words[2 * i + HIGH] = prefixes[member(i)];
    }
    if (last) this.words = new Uint32Array(0);
    packed.sort();
    // Runs of equal prefixes (rare) are ordered by full key, then by their given order, which the packing kept.
    for (let start = 0; start < n;) {
      let end = start + 1;
      while (end < n && words[2 * end + HIGH] === words[2 * start + HIGH]) end++;
      if (end - start > 1) {
        const run = [];
        for (let k = start; k < end; k++) run.push({ i: words[2 * k + LOW], key: fullKey(member(words[2 * k + LOW])) });
        run.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.i - b.i));
        run.forEach(({ i }, k) => (words[2 * (start + k) + LOW] = i));
      }
      start = end;
    }
    // In place: word i is written after word 2i + LOW, the one it is read from, was read (i <= 2i + LOW).
    for (let i = 0; i < n; i++) words[i] = member(words[2 * i + LOW]);
    return words.subarray(0, n);
  }
}
