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

/** Where a record sits: `train.jsonl line 7`, `train.parquet row 3`, `scores.json item 2` (an array's entry). */
export type Place = { line: number; unit?: 'line' | 'row' | 'item' };
export const placeOf = (source: string, rec: Place) => `${source} ${rec.unit ?? 'line'} ${rec.line}`;

/** Fails naming where the record sits; an item's number is not a line, so it is not given as one. */
export function fail(source: string, rec: Place, message: string, field?: string): never {
  const line = rec.unit === 'item' ? undefined : rec.line;
  throw new InvalidDataError(`${placeOf(source, rec)}: ${message}`, { file: source, line, field });
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

/** Fails a row over the limit; one still arriving (`partial`) is only known to be over it, not its full size. */
function checkRowSize(source: string, line: number, row: string, maxRowBytes: number, partial = false): void {
  if (row.length <= maxRowBytes / 3) return; // at most 3 UTF-8 bytes per UTF-16 unit: surely within the limit
  const bytes = Buffer.byteLength(row, 'utf8');
  if (bytes <= maxRowBytes) return;
  throw new InvalidDataError(
    `${source} line ${line}: the row is ${partial ? `more than ${maxRowBytes}` : bytes} bytes, over the limit of ${maxRowBytes} (input setting maxRowBytes)`,
    { file: source, line, field: 'maxRowBytes' },
  );
}

const isSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/** Takes the file's text chunk by chunk, then undefined at its end; yields the records each completes. */
type Splitter = (text: string | undefined) => Generator<SourceRecord>;

/**
 * The records of JSONL or of a top-level JSON array (told apart by the first non-blank character) as the text
 * arrives, one at a time: JSONL records are named by their line, array elements by the line they start on and their
 * index. A file without a record is refused as empty.
 */
export async function* jsonRecords(
  chunks: AsyncIterable<string>,
  source: string,
  maxRowBytes: number,
): AsyncGenerator<SourceRecord> {
  let head: string | undefined;
  let split: Splitter | undefined;
  let count = 0;
  for await (const chunk of chunks) {
    let text = chunk;
    if (split === undefined) {
      // A UTF-8 BOM (the text's first character) is not part of the JSON.
      head = head === undefined ? text.replace(/^\ufeff/, '') : head + text;
      const first = head.search(/\S/);
      if (first === -1) continue;
      split = head[first] === '[' ? arraySplitter(source, maxRowBytes) : lineSplitter(source, maxRowBytes);
      text = head;
    }
    for (const rec of split(text)) {
      count += 1;
      yield rec;
    }
  }
  for (const rec of split?.(undefined) ?? []) {
    count += 1;
    yield rec;
  }
  if (count === 0) throw new InvalidDataError(`${source}: dataset is empty`, { file: source });
}

/** JSONL: one record a line, blank lines skipped. */
function lineSplitter(source: string, maxRowBytes: number): Splitter {
  let pending = '';
  let line = 1;
  return function* (text) {
    const buffered = pending + (text ?? '');
    let from = 0;
    for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n', from)) {
      const rec = lineRecord(source, buffered.slice(from, nl), line++, maxRowBytes);
      if (rec) yield rec;
      from = nl + 1;
    }
    const rest = buffered.slice(from);
    if (text === undefined) {
      const rec = lineRecord(source, rest, line, maxRowBytes);
      if (rec) yield rec;
      return;
    }
    // A record still arriving fails once it is over the limit.
    checkRowSize(source, line, rest, maxRowBytes, true);
    // A copy, not a slice: a sliced string keeps its whole parent (this chunk of text) alive until the next chunk,
    // long enough, while the chunk's rows are scored, to be promoted to the old generation.
    pending = Buffer.from(rest, 'utf8').toString('utf8');
  };
}

function lineRecord(source: string, raw: string, line: number, maxRowBytes: number): SourceRecord | undefined {
  const rec = { line, index: -1 };
  // Checked before parsing, so an oversized line costs no parse.
  checkRowSize(source, line, raw.endsWith('\r') ? raw.slice(0, -1) : raw, maxRowBytes);
  const lineText = raw.trim();
  if (lineText === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(lineText);
  } catch (err) {
    const { what, offset } = jsonProblem(err);
    const column = offset === undefined ? '' : ` at column ${raw.indexOf(lineText) + offset + 1}`;
    fail(source, rec, `invalid JSON (${what}${column})`);
  }
  if (!isPlainObject(value)) fail(source, rec, `expected a JSON object, found ${kindOf(value)}`);
  return { value, ...rec };
}

/** A string-aware scan of the top-level array: each element is cut out whole and parsed on its own. */
function arraySplitter(source: string, maxRowBytes: number): Splitter {
  let state: 'open' | 'first' | 'value' | 'in-value' | 'after' | 'end' = 'open';
  /** The text of the element being read, from earlier chunks. */
  let parts: string[] = [];
  let line = 1;
  let valueLine = 0;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let scalar = false;
  let index = 0;
  const syntax = (at: number, what: string): never => fail(source, { line: at }, `invalid JSON (${what})`);
  const finish = (tail: string): SourceRecord => {
    const body = parts.length ? parts.join('') + tail : tail;
    parts = [];
    state = 'after';
    const rec = { line: valueLine, index: index++ };
    checkRowSize(source, rec.line, body, maxRowBytes);
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (err) {
      const { what, offset } = jsonProblem(err);
      syntax(rec.line + (offset === undefined ? 0 : newlinesIn(body, offset)), what);
    }
    if (!isPlainObject(value)) fail(source, rec, `item ${rec.index} must be a JSON object, found ${kindOf(value)}`);
    return { value, ...rec };
  };
  return function* (text) {
    if (text === undefined) {
      if (state !== 'end') syntax(line, 'Unexpected end of JSON input');
      return;
    }
    let valueStart = state === 'in-value' ? 0 : -1;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (state === 'in-value') {
        if (inString) {
          if (escaped) escaped = false;
          else if (c === 0x5c) escaped = true;
          else if (c === 0x22) {
            inString = false;
            if (depth === 0) yield finish(text.slice(valueStart, i + 1));
          }
        } else if (scalar) {
          if (isSpace(c) || c === 0x2c || c === 0x5d) {
            yield finish(text.slice(valueStart, i));
            i--; // the separator is read again in the 'after' state
            continue;
          }
        } else if (c === 0x22) inString = true;
        else if (c === 0x7b || c === 0x5b) depth++;
        else if (c === 0x7d || c === 0x5d) {
          depth--;
          if (depth === 0) yield finish(text.slice(valueStart, i + 1));
        }
        if (c === 0x0a) line++;
        continue;
      }
      if (c === 0x0a) line++;
      if (isSpace(c)) continue;
      switch (state) {
        case 'open':
          state = 'first'; // the mode check saw that this is '['
          break;
        case 'first':
        case 'value':
          if (c === 0x5d && state === 'first') state = 'end';
          else if (c === 0x5d || c === 0x2c) syntax(line, 'Unexpected character');
          else {
            state = 'in-value';
            valueLine = line;
            valueStart = i;
            parts = [];
            depth = c === 0x7b || c === 0x5b ? 1 : 0;
            inString = c === 0x22;
            scalar = !inString && depth === 0;
          }
          break;
        case 'after':
          if (c === 0x2c) state = 'value';
          else if (c === 0x5d) state = 'end';
          else syntax(line, "Expected ',' or ']' after array element");
          break;
        case 'end':
          syntax(line, 'Unexpected non-whitespace character after JSON');
      }
    }
    if (state === 'in-value') {
      parts.push(text.slice(valueStart));
      checkRowSize(source, valueLine, parts.join(''), maxRowBytes, true);
    }
  };
}
