/**
 * Splits JSONL or a top-level JSON array into its records while the text arrives in chunks, so a file of any size is
 * read with memory for one record at a time.
 */
import { InvalidDataError } from '../../common/failures';

/** One top-level record of a user file, with where it came from. */
export interface SourceRecord {
  value: Record<string, unknown>;
  /** 1-based line (JSONL, JSON, CSV) or row (Parquet) of the record's start. */
  line: number;
  /** 0-based position among the records; -1 for JSONL (ids there come from the line). */
  index: number;
  /** What `line` counts, for messages; 'line' when absent. */
  unit?: 'line' | 'row';
}

/** Where a record sits, for messages: `train.jsonl line 7`, `train.parquet row 3`. */
export const at = (source: string, rec: { line: number; unit?: 'line' | 'row' }): string =>
  `${source} ${rec.unit ?? 'line'} ${rec.line}`;

export function fail(
  source: string,
  rec: { line: number; unit?: 'line' | 'row' },
  message: string,
  field?: string,
): never {
  throw new InvalidDataError(`${at(source, rec)}: ${message}`, { file: source, line: rec.line, field });
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What a value is, for messages that must not quote it: `a number`, `a string of 12 characters`. */
export function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length} item${value.length === 1 ? '' : 's'}`;
  if (typeof value === 'string') return `a string of ${value.length} character${value.length === 1 ? '' : 's'}`;
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

/**
 * JSON.parse's complaint without the file's text: V8 quotes the offending token and a snippet around it, so only
 * its fixed phrases are kept, with the offset when it gives one.
 */
export function jsonProblem(err: unknown): { what: string; offset?: number } {
  const message = err instanceof Error ? err.message : '';
  const located = /^([A-Za-z][A-Za-z ',:[\]{}-]{0,80}?) in JSON at position (\d+)/.exec(message);
  if (located) return { what: located[1].replace(/token '.*?'/, 'character'), offset: Number(located[2]) };
  if (message.startsWith('Unexpected end of JSON input')) return { what: 'Unexpected end of JSON input' };
  if (message.startsWith('Unexpected token')) return { what: 'Unexpected character' };
  return { what: 'not valid JSON' };
}

function newlinesIn(text: string, end = text.length): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < end; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

export function checkRowSize(source: string, line: number, row: string, maxRowBytes: number): void {
  if (row.length <= maxRowBytes / 3) return; // at most 3 UTF-8 bytes per UTF-16 unit: surely within the limit
  const bytes = Buffer.byteLength(row, 'utf8');
  if (bytes > maxRowBytes) {
    throw new InvalidDataError(
      `${source} line ${line}: the row is ${bytes} bytes, over the limit of ${maxRowBytes} (input setting maxRowBytes)`,
      { file: source, line, field: 'maxRowBytes' },
    );
  }
}

/** A record still arriving that is already over the limit: its full size is not known yet, only that it is over. */
function checkPartialRowSize(source: string, line: number, partial: string, maxRowBytes: number): void {
  if (partial.length <= maxRowBytes / 3 || Buffer.byteLength(partial, 'utf8') <= maxRowBytes) return;
  throw new InvalidDataError(
    `${source} line ${line}: the row is more than ${maxRowBytes} bytes, over the limit of ${maxRowBytes} (input setting maxRowBytes)`,
    { file: source, line, field: 'maxRowBytes' },
  );
}

const isSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

type ArrayState = 'open' | 'first' | 'value' | 'in-value' | 'after' | 'end';

/** Push text chunks in order, then call end(); each call returns the records completed so far. */
export class JsonRecordSplitter {
  private mode: 'unknown' | 'jsonl' | 'array' = 'unknown';
  private started = false;
  private pending = '';
  /** Lines before `pending` (JSONL) or before the current chunk (array). */
  private line = 1;
  // JSON array scanning state.
  private state: ArrayState = 'open';
  private parts: string[] = [];
  private valueLine = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private scalar = false;
  private index = 0;
  private count = 0;

  constructor(
    private readonly source: string,
    private readonly maxRowBytes: number,
  ) {}

  /** True once the first non-blank character said the file is a JSON array (undefined while only blanks came). */
  get isArray(): boolean | undefined {
    return this.mode === 'unknown' ? undefined : this.mode === 'array';
  }

  push(chunk: string): SourceRecord[] {
    let text = chunk;
    if (!this.started && text.length) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a UTF-8 BOM is not part of the JSON
    }
    if (this.mode === 'unknown') {
      const buffered = this.pending + text;
      const first = buffered.search(/\S/);
      if (first === -1) {
        this.pending = buffered;
        return [];
      }
      this.mode = buffered[first] === '[' ? 'array' : 'jsonl';
      this.pending = '';
      text = buffered;
    }
    const out = this.mode === 'jsonl' ? this.pushLines(text, false) : this.pushArray(text);
    this.count += out.length;
    return out;
  }

  end(): SourceRecord[] {
    let out: SourceRecord[] = [];
    if (this.mode === 'jsonl') out = this.pushLines('', true);
    else if (this.mode === 'array' && this.state !== 'end') {
      this.syntax(this.line, 'Unexpected end of JSON input');
    }
    this.count += out.length;
    if (this.count === 0) throw new InvalidDataError(`${this.source}: dataset is empty`, { file: this.source });
    return out;
  }

  private pushLines(text: string, last: boolean): SourceRecord[] {
    const records: SourceRecord[] = [];
    let buffered = this.pending + text;
    let from = 0;
    for (;;) {
      const nl = buffered.indexOf('\n', from);
      if (nl === -1) break;
      this.lineRecord(buffered.slice(from, nl), records);
      from = nl + 1;
    }
    buffered = buffered.slice(from);
    if (last) {
      this.lineRecord(buffered, records);
      buffered = '';
    } else {
      // A record still arriving fails once it is over the limit.
      checkPartialRowSize(this.source, this.line, buffered, this.maxRowBytes);
    }
    // A copy, not a slice: a sliced string keeps its whole parent (this chunk of text) alive until the next push,
    // long enough, while the chunk's rows are scored, to be promoted to the old generation.
    this.pending = Buffer.from(buffered, 'utf8').toString('utf8');
    return records;
  }

  private lineRecord(raw: string, records: SourceRecord[]): void {
    const rec = { line: this.line, index: -1 };
    this.line += 1;
    // Checked before parsing, so an oversized line costs no parse.
    checkRowSize(this.source, rec.line, raw.endsWith('\r') ? raw.slice(0, -1) : raw, this.maxRowBytes);
    const lineText = raw.trim();
    if (lineText === '') return;
    let value: unknown;
    try {
      value = JSON.parse(lineText);
    } catch (err) {
      const { what, offset } = jsonProblem(err);
      const column = offset === undefined ? '' : ` at column ${raw.indexOf(lineText) + offset + 1}`;
      fail(this.source, rec, `invalid JSON (${what}${column})`);
    }
    if (!isPlainObject(value)) fail(this.source, rec, `expected a JSON object, found ${kindOf(value)}`);
    records.push({ value, ...rec });
  }

  private syntax(line: number, what: string): never {
    fail(this.source, { line }, `invalid JSON (${what})`);
  }

  /** A string-aware scan of the top-level array: each element is cut out whole and parsed on its own. */
  private pushArray(text: string): SourceRecord[] {
    const records: SourceRecord[] = [];
    let valueStart = this.state === 'in-value' ? 0 : -1;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (this.state === 'in-value') {
        if (this.inString) {
          if (this.escaped) this.escaped = false;
          else if (c === 0x5c) this.escaped = true;
          else if (c === 0x22) {
            this.inString = false;
            if (this.depth === 0) this.finishValue(text.slice(valueStart, i + 1), records);
          }
        } else if (this.scalar) {
          if (isSpace(c) || c === 0x2c || c === 0x5d) {
            this.finishValue(text.slice(valueStart, i), records);
            i--; // the separator is read again in the 'after' state
            continue;
          }
        } else if (c === 0x22) this.inString = true;
        else if (c === 0x7b || c === 0x5b) this.depth++;
        else if (c === 0x7d || c === 0x5d) {
          this.depth--;
          if (this.depth === 0) this.finishValue(text.slice(valueStart, i + 1), records);
        }
        if (c === 0x0a) this.line++;
        continue;
      }
      if (c === 0x0a) this.line++;
      if (isSpace(c)) continue;
      switch (this.state) {
        case 'open':
          this.state = 'first'; // the mode check saw that this is '['
          break;
        case 'first':
        case 'value':
          if (c === 0x5d && this.state === 'first') this.state = 'end';
          else if (c === 0x5d || c === 0x2c) this.syntax(this.line, 'Unexpected character');
          else {
            this.state = 'in-value';
            this.valueLine = this.line;
            valueStart = i;
            this.parts = [];
            this.depth = c === 0x7b || c === 0x5b ? 1 : 0;
            this.inString = c === 0x22;
            this.scalar = !this.inString && this.depth === 0;
          }
          break;
        case 'after':
          if (c === 0x2c) this.state = 'value';
          else if (c === 0x5d) this.state = 'end';
          else this.syntax(this.line, "Expected ',' or ']' after array element");
          break;
        case 'end':
          this.syntax(this.line, 'Unexpected non-whitespace character after JSON');
      }
    }
    if (this.state === 'in-value') {
      this.parts.push(text.slice(valueStart));
      checkPartialRowSize(this.source, this.valueLine, this.parts.join(''), this.maxRowBytes);
    }
    return records;
  }

  private finishValue(tail: string, records: SourceRecord[]): void {
    const body = this.parts.length ? this.parts.join('') + tail : tail;
    this.parts = [];
    this.state = 'after';
    const rec = { line: this.valueLine, index: this.index++ };
    checkRowSize(this.source, rec.line, body, this.maxRowBytes);
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (err) {
      const { what, offset } = jsonProblem(err);
      this.syntax(rec.line + (offset === undefined ? 0 : newlinesIn(body, offset)), what);
    }
    if (!isPlainObject(value))
      fail(this.source, rec, `item ${rec.index} must be a JSON object, found ${kindOf(value)}`);
    records.push({ value, ...rec });
  }
}
