/**
 * Parsing of instruction datasets and benchmark prompt sets. Pure: takes the file's text and a source name
 * (used only in messages), never touches the disk. Every error is an InvalidDataError naming the file and the
 * line and the field at fault, and says what kind of value was found (type, length), never the file's text: a
 * file named by mistake (a key, an environment dump) must not end up in a failure message.
 *
 * Both parsers accept JSONL (one object per line, blank lines allowed) and a JSON document whose top level is an
 * array of objects (the released Alpaca files are JSON arrays, the benchmark files JSONL).
 */
import { MAX_ROW_BYTES } from '../../common/settings/constants';
import { fail, isPlainObject, kindOf, splitRecords, type SourceRecord } from './json-records';
import {
  alpacaRowBuilder,
  defaultId,
  givenId,
  optionalString,
  requiredString,
  uniqueIds,
  type AlpacaRow,
} from './rows';

export { kindOf, type AlpacaRow };

export interface ParseOptions {
  /** Largest JSONL line or JSON array element, in UTF-8 bytes; default: the input schema's `maxRowBytes`. */
  maxRowBytes?: number;
}

const DEFAULT_MAX_ROW_BYTES = MAX_ROW_BYTES;

export interface BenchmarkPrompt {
  id: string;
  instruction: string;
  /** '' when the prompt has no input. */
  input: string;
  /** A known answer (`output` / `reference` / `answer`, or Self-Instruct's `instances[0].output`), for the offline judge. */
  reference?: string;
}

/**
 * Alpaca rows from JSONL or a JSON array. `instruction` (non-empty string) and `output` (string) are required;
 * `input` is an optional string (absent or null reads as ''); `id` is an optional string or number, unique in the file.
 */
export function parseAlpaca(text: string, source: string, options: ParseOptions = {}): AlpacaRow[] {
  return splitRecords(text, source, options.maxRowBytes ?? DEFAULT_MAX_ROW_BYTES).map(alpacaRowBuilder(source));
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
  return splitRecords(text, source, options.maxRowBytes ?? DEFAULT_MAX_ROW_BYTES).map((rec) => {
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
