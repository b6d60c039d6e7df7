/**
 * Parsing of instruction datasets and benchmark prompt sets. Pure: takes the file's text and a source name
 * (used only in messages), never touches the disk. Every error is an InvalidDataError naming the file and the
 * line (or, for a JSON array that does not parse, the position) and the field at fault.
 *
 * Both parsers accept JSONL (one object per line, blank lines allowed) and a JSON document whose top level is an
 * array of objects (the released Alpaca files are JSON arrays, the benchmark files JSONL).
 */
import { InvalidDataError } from '../../common/failures';

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

/**
 * Offsets where each element of a valid top-level JSON array starts, so errors about element i can name its line.
 * Only called on text that JSON.parse accepted, so a string-aware bracket count is enough.
 */
function arrayElementOffsets(text: string): number[] {
  const offsets: number[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let expectElement = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') continue;
    if (depth === 1 && expectElement && c !== ']') {
      offsets.push(i);
      expectElement = false;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      depth++;
      if (depth === 1) expectElement = true;
    } else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 1) expectElement = true;
  }
  return offsets;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Split a file into its top-level objects: a JSON array, or JSONL. */
function readRecords(text: string, source: string): SourceRecord[] {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text; // a UTF-8 BOM is not part of the JSON
  const records: SourceRecord[] = [];
  if (body.trimStart().startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (err) {
      const message = errorText(err);
      const position = /at position (\d+)/.exec(message);
      const line = position ? lineOfOffset(body, Number(position[1])) : undefined;
      const where = line === undefined ? source : `${source} line ${line}`;
      throw new InvalidDataError(`${where}: invalid JSON (${message})`, { file: source, line });
    }
    const items = parsed as unknown[];
    const offsets = arrayElementOffsets(body);
    items.forEach((value, index) => {
      const rec = { line: lineOfOffset(body, offsets[index] ?? 0), index };
      if (!isPlainObject(value)) fail(source, rec, `item ${index} must be a JSON object`);
      records.push({ value, ...rec });
    });
  } else {
    body.split('\n').forEach((raw, i) => {
      const rec = { line: i + 1, index: -1 };
      const lineText = raw.trim();
      if (lineText === '') return;
      let value: unknown;
      try {
        value = JSON.parse(lineText);
      } catch (err) {
        fail(source, rec, `invalid JSON (${errorText(err)})`);
      }
      if (!isPlainObject(value)) fail(source, rec, 'expected a JSON object');
      records.push({ value, ...rec });
    });
  }
  if (records.length === 0) throw new InvalidDataError(`${source}: dataset is empty`, { file: source });
  return records;
}

function requiredString(source: string, rec: SourceRecord, field: string, nonEmpty: boolean): string {
  if (!(field in rec.value)) fail(source, rec, `missing required field "${field}"`, field);
  const value = rec.value[field];
  if (typeof value !== 'string') fail(source, rec, `field "${field}" must be a string`, field);
  if (nonEmpty && value.trim() === '') fail(source, rec, `field "${field}" must not be empty`, field);
  return value;
}

/** An optional string field; absent or null reads as undefined. `label` names it in messages. */
function optionalString(source: string, rec: SourceRecord, field: string, label = field): string | undefined {
  const value = rec.value[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') fail(source, rec, `field "${label}" must be a string`, label);
  return value;
}

/** The row's own id (string or number), or undefined when it has none under `field`. */
function givenId(source: string, rec: SourceRecord, field: string): string | undefined {
  const value = rec.value[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'string' && value.trim() !== '') return value;
  fail(source, rec, `field "${field}" must be a non-empty string or a number`, field);
}

function defaultId(rec: SourceRecord): string {
  return rec.index >= 0 ? `I${rec.index}` : `L${rec.line}`;
}

/** Checks ids are unique across the file (given and generated alike). */
function uniqueIds(source: string): (rec: SourceRecord, id: string, field: string) => void {
  const seen = new Map<string, number>();
  return (rec, id, field) => {
    const first = seen.get(id);
    if (first !== undefined) fail(source, rec, `duplicate id "${id}" (first used on line ${first})`, field);
    seen.set(id, rec.line);
  };
}

const ALPACA_FIELDS = new Set(['id', 'instruction', 'input', 'output']);

/**
 * Alpaca rows from JSONL or a JSON array. `instruction` (non-empty string) and `output` (string) are required;
 * `input` is an optional string (absent or null reads as ''); `id` is an optional string or number, unique in the file.
 */
export function parseAlpaca(text: string, source: string): AlpacaRow[] {
  const checkId = uniqueIds(source);
  return readRecords(text, source).map((rec) => {
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
export function parseBenchmark(text: string, source: string, name: string): BenchmarkPrompt[] {
  const format = benchmarkFormat(name);
  const checkId = uniqueIds(source);
  return readRecords(text, source).map((rec) => {
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
        fail(source, rec, 'field "instances" must be an array holding exactly one object', 'instances');
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
