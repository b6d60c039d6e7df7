import { storedScoreRow } from './score-rows';
import type { ScoreRow } from '../types';

const NEWLINE = 0x0a;

/**
 * The answers of one open part of the score step, kept as the bytes they are written as (the part's line and the
 * scores.jsonl line) and their score, not as objects. A part of a million-row step holds 1,000 answers for as long
 * as its slowest row takes: objects kept that long outlive young-generation collections and are promoted, and the
 * old generation then grows with the dataset until a full collection. The buffers are used again by later parts.
 */
export class PartLines {
  private bytes = Buffer.allocUnsafe(64 * 1024);
  private used = 0;
  /**
   * Per slot: start and length of the part's line, then of the scores.jsonl line; and its score, NaN for none. Arrays
   * of small integers and of doubles only, which V8 keeps unboxed, as typed arrays are.
   */
  private spans: number[] = [];
  private scores: number[] = [];
  private out = Buffer.allocUnsafe(0);

  /** Keeps `row`'s lines; returns its slot. */
  add(row: ScoreRow): number {
    const slot = this.scores.push(row.score ?? NaN) - 1;
    this.keep(4 * slot, JSON.stringify(row));
    this.keep(4 * slot + 2, JSON.stringify(storedScoreRow(row)));
    return slot;
  }

  private keep(at: number, line: string): void {
    const length = Buffer.byteLength(line);
    if (this.used + length > this.bytes.length) {
      const bigger = Buffer.allocUnsafe(Math.max(2 * this.bytes.length, this.used + length));
      this.bytes.copy(bigger, 0, 0, this.used);
      this.bytes = bigger;
    }
    this.spans[at] = this.used;
    this.spans[at + 1] = length;
    this.used += this.bytes.write(line, this.used);
  }

  /** The part's stored bytes (as toJsonl writes its rows), its slots in order; valid until the next call. */
  partJsonl(slots: readonly number[]): Buffer {
    let size = 0;
    for (const slot of slots) size += this.spans[4 * slot + 1] + 1;
    if (this.out.length < size) this.out = Buffer.allocUnsafe(size);
    let at = 0;
    for (const slot of slots) {
      at += this.line(4 * slot).copy(this.out, at);
      this.out[at++] = NEWLINE;
    }
    return this.out.subarray(0, at);
  }

  /** The line whose span starts at `spans[at]`, without its line break; valid until the part is released. */
  private line(at: number): Buffer {
    return this.bytes.subarray(this.spans[at], this.spans[at] + this.spans[at + 1]);
  }

  /** The slot's scores.jsonl line, without its line break; valid until the part is released. */
  scoresLine(slot: number): Buffer {
    return this.line(4 * slot + 2);
  }

  /** The slot's score, null when it has none. */
  score(slot: number): number | null {
    const s = this.scores[slot];
    return Number.isNaN(s) ? null : s;
  }

  /** The slot's row as it was added (parsed again: only wanted for the rare row without a score). */
  row(slot: number): ScoreRow {
    return JSON.parse(this.line(4 * slot).toString('utf8'));
  }

  clear(): void {
    this.used = 0;
    this.spans.length = 0;
    this.scores.length = 0;
  }
}

/** A PartLines per open part, numbered as the parts are; released ones are used again. */
export class OpenPartLines {
  private readonly open = new Map<number, PartLines>();
  private readonly free: PartLines[] = [];

  of(index: number): PartLines {
    let lines = this.open.get(index);
    if (!lines) {
      lines = this.free.pop() ?? new PartLines();
      this.open.set(index, lines);
    }
    return lines;
  }

  release(index: number): void {
    const lines = this.open.get(index);
    if (!lines) return;
    this.open.delete(index);
    lines.clear();
    this.free.push(lines);
  }
}
