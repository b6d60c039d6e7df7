/**
 * Parsing of instruction datasets and benchmark prompt sets. Pure: takes the file's text and a source name
 * (used only in messages), never touches the disk. Every error is an InvalidDataError naming the file and the
 * line and the field at fault, and says what kind of value was found (type, length), never the file's text: a
 * file named by mistake (a key, an environment dump) must not end up in a failure message.
 *
 * Both parsers accept JSONL (one object per line, blank lines allowed) and a JSON document whose top level is an
 * array of objects (the released Alpaca files are JSON arrays, the benchmark files JSONL).
 */
import { InvalidDataError } from '../../common/failures';
import { MAX_ROW_BYTES } from '../../common/settings/constants';

export interface ParseOptions {
  /** Largest JSONL line or JSON array element, in UTF-8 bytes; default: the input schema's `maxRowBytes`. */
  maxRowBytes?: number;
}

const DEFAULT_MAX_ROW_BYTES = MAX_ROW_BYTES;

export interface AlpacaRow {
  /** The row's `id` (string, or number turned into a string), else `L<line>` (JSONL) or `I<index>` (JSON array). */
  id: string;
  instruction: string;
  /** '' when the row has no input. */
  input: string;
  output: string;
  /** Any other fields of the row (`family`, `score`, ...), kept as they were; absent when there are none. */
  extra?: Record<string, unknown>;
}

export interface BenchmarkPrompt {
  id: string;
  instruction: string;
  /** '' when the prompt has no input. */
  input: string;
  /** A known answer (`output` / `reference` / `answer`, or Self-Instruct's `instances[0].output`), for the offline judge. */
  reference?: string;
}

/** One top-level object of the file, with where it came from. */
interface SourceRecord {
  value: Record<string, unknown>;
  line: number;
  /** 0-based position among the records; -1 for JSONL (ids there come from the line). */
  index: number;
}

/** Where a record sits, for messages: `train.jsonl line 7`. */
function at(source: string, rec: { line: number }): string {
  return `${source} line ${rec.line}`;
}

function fail(source: string, rec: { line: number }, message: string, field?: string): never {
  throw new InvalidDataError(`${at(source, rec)}: ${message}`, { file: source, line: rec.line, field });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function lineOfOffset(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
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
function jsonProblem(err: unknown): { what: string; offset?: number } {
  const message = err instanceof Error ? err.message : '';
  const located = /^([A-Za-z][A-Za-z ',:[\]{}-]{0,80}?) in JSON at position (\d+)/.exec(message);
  if (located) return { what: located[1].replace(/token '.*?'/, 'character'), offset: Number(located[2]) };
  if (message.startsWith('Unexpected end of JSON input')) return { what: 'Unexpected end of JSON input' };
  if (message.startsWith('Unexpected token')) return { what: 'Unexpected character' };
  return { what: 'not valid JSON' };
}

/**
 * Start and end offsets of each element of a top-level JSON array, by a string-aware bracket count. Exact on text
 * JSON.parse accepted; on text it refused, good enough to find the element that holds the error.
 */
function arrayElementSpans(text: string): Array<{ start: number; end: number }> {
  const spans: Array<{ start: number; end: number }> = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let current: { start: number; end: number } | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      if (current) current.end = i + 1;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') continue;
    if (depth === 1 && (c === ',' || c === ']')) {
      if (current) spans.push(current);
      current = undefined;
      if (c === ']') depth--;
      continue;
    }
    if (depth === 1 && !current) current = { start: i, end: i + 1 };
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
    if (current) current.end = i + 1;
  }
  if (current) spans.push(current);
  return spans;
}

function checkRowSize(source: string, line: number, row: string, maxRowBytes: number): void {
  if (row.length <= maxRowBytes / 3) return; // at most 3 UTF-8 bytes per UTF-16 unit: surely within the limit
  const bytes = Buffer.byteLength(row, 'utf8');
  if (bytes > maxRowBytes) {
    throw new InvalidDataError(
      `${source} line ${line}: the row is ${bytes} bytes, over the limit of ${maxRowBytes} (input setting maxRowBytes)`,
      { file: source, line, field: 'maxRowBytes' },
    );
  }
}

/** A JSON array that JSON.parse refused: names the line of the error, or of the first element that does not parse. */
function arrayParseError(body: string, source: string, err: unknown): InvalidDataError {
  let { what, offset } = jsonProblem(err);
  if (offset === undefined) {
    for (const span of arrayElementSpans(body)) {
      try {
        JSON.parse(body.slice(span.start, span.end));
      } catch (elementErr) {
        const inner = jsonProblem(elementErr);
        what = inner.what;
        offset = span.start + (inner.offset ?? 0);
        break;
      }
    }
  }
  const line = offset === undefined ? undefined : lineOfOffset(body, offset);
  const where = line === undefined ? source : `${source} line ${line}`;
  return new InvalidDataError(`${where}: invalid JSON (${what})`, { file: source, line });
}

/** Split a file into its top-level objects: a JSON array, or JSONL. */
function readRecords(text: string, source: string, maxRowBytes: number): SourceRecord[] {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text; // a UTF-8 BOM is not part of the JSON
  const records: SourceRecord[] = [];
  if (body.trimStart().startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (err) {
      throw arrayParseError(body, source, err);
    }
    const items = parsed as unknown[];
    const spans = arrayElementSpans(body);
    items.forEach((value, index) => {
      const span = spans[index] ?? { start: 0, end: 0 };
      const rec = { line: lineOfOffset(body, span.start), index };
      checkRowSize(source, rec.line, body.slice(span.start, span.end), maxRowBytes);
      if (!isPlainObject(value)) fail(source, rec, `item ${index} must be a JSON object, found ${kindOf(value)}`);
      records.push({ value, ...rec });
    });
  } else {
    body.split('\n').forEach((raw, i) => {
      const rec = { line: i + 1, index: -1 };
      // Checked before parsing, so an oversized line costs no parse.
      checkRowSize(source, rec.line, raw.endsWith('\r') ? raw.slice(0, -1) : raw, maxRowBytes);
      const lineText = raw.trim();
      if (lineText === '') return;
      let value: unknown;
      try {
        value = JSON.parse(lineText);
      } catch (err) {
        const { what, offset } = jsonProblem(err);
        const column = offset === undefined ? '' : ` at column ${raw.indexOf(lineText) + offset + 1}`;
        fail(source, rec, `invalid JSON (${what}${column})`);
      }
      if (!isPlainObject(value)) fail(source, rec, `expected a JSON object, found ${kindOf(value)}`);
      records.push({ value, ...rec });
    });
  }
  if (records.length === 0) throw new InvalidDataError(`${source}: dataset is empty`, { file: source });
  return records;
}

function requiredString(source: string, rec: SourceRecord, field: string, nonEmpty: boolean): string {
  if (!(field in rec.value)) fail(source, rec, `missing required field "${field}"`, field);
  const value = rec.value[field];
  if (typeof value !== 'string') fail(source, rec, `field "${field}" must be a string, found ${kindOf(value)}`, field);
  if (nonEmpty && value.trim() === '') {
    fail(
      source,
      rec,
      `field "${field}" must not be empty, found ${value === '' ? 'an empty string' : 'only spaces'}`,
      field,
    );
  }
  return value;
}

/** An optional string field; absent or null reads as undefined. `label` names it in messages. */
function optionalString(source: string, rec: SourceRecord, field: string, label = field): string | undefined {
  const value = rec.value[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') fail(source, rec, `field "${label}" must be a string, found ${kindOf(value)}`, label);
  return value;
}

/** The row's own id (string or number), or undefined when it has none under `field`. */
function givenId(source: string, rec: SourceRecord, field: string): string | undefined {
  const value = rec.value[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'string' && value.trim() !== '') return value;
  fail(source, rec, `field "${field}" must be a non-empty string or a number, found ${kindOf(value)}`, field);
}

function defaultId(rec: SourceRecord): string {
  return rec.index >= 0 ? `I${rec.index}` : `L${rec.line}`;
}

/** Checks ids are unique across the file (given and generated alike). */
function uniqueIds(source: string): (rec: SourceRecord, id: string, field: string) => void {
  const seen = new Map<string, number>();
  return (rec, id, field) => {
    const first = seen.get(id);
    // The id itself is file content: the two lines say where to look.
    if (first !== undefined) fail(source, rec, `duplicate id in field "${field}" (first used on line ${first})`, field);
    seen.set(id, rec.line);
  };
}

const ALPACA_FIELDS = new Set(['id', 'instruction', 'input', 'output']);

/**
 * Alpaca rows from JSONL or a JSON array. `instruction` (non-empty string) and `output` (string) are required;
 * `input` is an optional string (absent or null reads as ''); `id` is an optional string or number, unique in the file.
 */
export function parseAlpaca(text: string, source: string, options: ParseOptions = {}): AlpacaRow[] {
  const checkId = uniqueIds(source);
  return readRecords(text, source, options.maxRowBytes ?? DEFAULT_MAX_ROW_BYTES).map((rec) => {
    const instruction = requiredString(source, rec, 'instruction', true);
    const input = optionalString(source, rec, 'input') ?? '';
    const output = requiredString(source, rec, 'output', false);
    const id = givenId(source, rec, 'id') ?? defaultId(rec);
    checkId(rec, id, 'id');
    const row: AlpacaRow = { id, instruction, input, output };
    const extraKeys = Object.keys(rec.value).filter((k) => !ALPACA_FIELDS.has(k));
    if (extraKeys.length > 0) row.extra = Object.fromEntries(extraKeys.map((k) => [k, rec.value[k]]));
    return row;
  });
}

/**
 * The prompt field and id field of each public benchmark file, as the released loader reads them
 * (PhasedSFT generation/generation_v2.py and evaluation/eval.py pick the format from the benchmark's name).
 * Self-Instruct keeps its input in `instances[0].input`; Anthropic HH and OASST in `input`.
 */
export const BENCHMARK_FORMATS: Readonly<Record<string, { promptField: string; idField: string }>> = {
  vicuna: { promptField: 'text', idField: 'question_id' },
  koala: { promptField: 'prompt', idField: 'id' },
  sinstruct: { promptField: 'instruction', idField: 'id' },
  wizardlm: { promptField: 'Instruction', idField: 'idx' },
  anthropic: { promptField: 'instruction', idField: 'id' },
  oasst: { promptField: 'instruction', idField: 'id' },
};

/** Field names tried, in order, for a benchmark whose name is not one of BENCHMARK_FORMATS. */
export const PROMPT_FIELDS = ['instruction', 'Instruction', 'prompt', 'text'] as const;
const ID_FIELDS = ['id', 'question_id', 'idx'] as const;
const REFERENCE_FIELDS = ['output', 'reference', 'answer'] as const;

/** The known format whose key the benchmark name contains (as the released scripts match file names), if any. */
export function benchmarkFormat(name: string): { promptField: string; idField: string } | undefined {
  const lower = name.toLowerCase();
  const key = Object.keys(BENCHMARK_FORMATS).find((k) => lower.includes(k));
  return key === undefined ? undefined : BENCHMARK_FORMATS[key];
}

/**
 * Benchmark prompts from JSONL or a JSON array. `name` selects the field layout (BENCHMARK_FORMATS: `vicuna`,
 * `koala`, `sinstruct`, `wizardlm`, `anthropic`, `oasst`, matched as a substring like the released scripts do);
 * any other name takes the first present of PROMPT_FIELDS and of `id` / `question_id` / `idx`.
 */
export function parseBenchmark(
  text: string,
  source: string,
  name: string,
  options: ParseOptions = {},
): BenchmarkPrompt[] {
  const format = benchmarkFormat(name);
  const checkId = uniqueIds(source);
  return readRecords(text, source, options.maxRowBytes ?? DEFAULT_MAX_ROW_BYTES).map((rec) => {
    const promptField = format?.promptField ?? PROMPT_FIELDS.find((f) => f in rec.value);
    if (promptField === undefined) {
      fail(source, rec, `missing a prompt field (one of ${PROMPT_FIELDS.map((f) => `"${f}"`).join(', ')})`);
    }
    const instruction = requiredString(source, rec, promptField, true);

    let input = '';
    let reference: string | undefined;
    if ('instances' in rec.value) {
      // Self-Instruct: the released loader asserts exactly one instance and reads its input (and we its output).
      const instances = rec.value.instances;
      if (!Array.isArray(instances) || instances.length !== 1 || !isPlainObject(instances[0])) {
        fail(
          source,
          rec,
          `field "instances" must be an array holding exactly one object, found ${kindOf(instances)}`,
          'instances',
        );
      }
      const instance: SourceRecord = { ...rec, value: instances[0] };
      input = optionalString(source, instance, 'input', 'instances[0].input') ?? '';
      reference = optionalString(source, instance, 'output', 'instances[0].output');
    } else {
      input = optionalString(source, rec, 'input') ?? '';
    }
    for (const field of REFERENCE_FIELDS) {
      if (reference !== undefined) break;
      reference = optionalString(source, rec, field);
    }

    const idField = format?.idField ?? ID_FIELDS.find((f) => rec.value[f] !== undefined && rec.value[f] !== null);
    const id = (idField === undefined ? undefined : givenId(source, rec, idField)) ?? defaultId(rec);
    checkId(rec, id, idField ?? 'id');
    const prompt: BenchmarkPrompt = { id, instruction, input };
    if (reference !== undefined) prompt.reference = reference;
    return prompt;
  });
}
