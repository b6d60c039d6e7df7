/**
 * Ids seen so far with the line each was first seen on, for lookups by id (score files, batch results) and the
 * unique-id check of files parsed whole. A Map of strings costs about 55 bytes of heap an id (and leaves as much
 * garbage while it grows); here an id costs its UTF-8 bytes in one growing buffer plus 20 bytes in typed arrays (its
 * start, its line, two slots of an open-addressing table at most half full), outside the JavaScript heap. Ids are
 * compared byte for byte, so a hash collision never makes two ids one. A dataset read as a stream only needs to know
 * its ids are unique, which id-check.ts checks in the row engine.
 */

const EMPTY = 0;
/** FNV-1a, 32 bits: cheap and well spread over short keys such as `b123456`. */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export class IdTable {
  private bytes = Buffer.allocUnsafe(1 << 16);
  private used = 0;
  /** Id i's bytes are bytes[starts[i], starts[i + 1]) (the last one's end is `used`). */
  private starts = new Float64Array(1024);
  private lines = new Uint32Array(1024);
  private count = 0;
  /** Id index + 1 per slot, EMPTY where none. */
  private slots = new Uint32Array(2048);

  get size(): number {
    return this.count;
  }

  /** The line `id` was first seen on, or undefined when it is new (it is then recorded with `line`). */
  firstLine(id: string, line: number): number | undefined {
    const { found, slot, start, length } = this.find(id);
    if (found !== undefined) return found;
    this.add(start, length, line);
    this.slots[slot] = this.count;
    if (this.count * 2 > this.slots.length) this.rehash();
    return undefined;
  }

  /** The line `id` was first seen on, or undefined when it was never seen; records nothing. */
  lineOf(id: string): number | undefined {
    return this.find(id).found;
  }

  /** Writes `id` past the ids held, where the next one would go (recorded only by `add`), and finds its slot. */
  private find(id: string): { found: number | undefined; slot: number; start: number; length: number } {
    const length = Buffer.byteLength(id);
    this.reserveBytes(length);
    const start = this.used;
    this.bytes.write(id, start, length, 'utf8');
    const mask = this.slots.length - 1;
    for (let slot = this.hashOf(start, start + length) & mask; ; slot = (slot + 1) & mask) {
      const held = this.slots[slot];
      if (held === EMPTY) return { found: undefined, slot, start, length };
      if (this.sameBytes(held - 1, start, length)) return { found: this.lines[held - 1], slot, start, length };
    }
  }

  private add(start: number, length: number, line: number): void {
    if (this.count === this.lines.length) {
      const starts = new Float64Array(this.count * 2);
      starts.set(this.starts);
      this.starts = starts;
      const lines = new Uint32Array(this.count * 2);
      lines.set(this.lines);
      this.lines = lines;
    }
    this.starts[this.count] = start;
    this.lines[this.count] = line;
    this.count += 1;
    this.used = start + length;
  }

  private endOf(i: number): number {
    return i + 1 < this.count ? this.starts[i + 1] : this.used;
  }

  private sameBytes(i: number, start: number, length: number): boolean {
    const from = this.starts[i];
    if (this.endOf(i) - from !== length) return false;
    for (let k = 0; k < length; k++) if (this.bytes[from + k] !== this.bytes[start + k]) return false;
    return true;
  }

  private hashOf(from: number, to: number): number {
    let h = FNV_OFFSET;
    for (let k = from; k < to; k++) h = Math.imul(h ^ this.bytes[k], FNV_PRIME);
    return h >>> 0;
  }

  private reserveBytes(length: number): void {
    if (this.used + length <= this.bytes.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.used + length));
    this.bytes.copy(grown, 0, 0, this.used);
    this.bytes = grown;
  }

  private rehash(): void {
    this.slots = new Uint32Array(this.slots.length * 2);
    const mask = this.slots.length - 1;
    for (let i = 0; i < this.count; i++) {
      let slot = this.hashOf(this.starts[i], this.endOf(i)) & mask;
      while (this.slots[slot] !== EMPTY) slot = (slot + 1) & mask;
      this.slots[slot] = i + 1;
    }
  }
}
