/**
 * The prompts of a benchmark file, built from its records as DatasetRows hands them on (JSONL, a JSON array, CSV
 * or Parquet). Every error is an InvalidDataError naming the file and the line and the field at fault, and says what
 * kind of value was found (type, length), never the file's text: a file named by mistake (a key, an environment
 * dump) must not end up in a failure message.
 */
import type { BenchmarkRef } from '../../common/settings/schema';
import type { ActivityDeps } from '../deps';
import { fail, isPlainObject, kindOf, type SourceRecord } from './json-records';
import { DatasetRows } from './read-dataset';
import { defaultId, givenId, optionalString, requiredString, ROLES, uniqueIds } from './rows';

export interface BenchmarkPrompt {
  id: string;
  instruction: string;
  /** '' when the prompt has no input. */
  input: string;
  /** A known answer (`output` / `reference` / `answer`, or Self-Instruct's `instances[0].output`), for the offline judge. */
  reference?: string;
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

/** The turn lists a benchmark prompt may come as, with their role and text keys; either list may name
 * its roles either way (`user` or `human`, `assistant` or `gpt`). */
const TURN_LISTS = [
  { field: 'messages', role: 'role', content: 'content' },
  { field: 'conversations', role: 'from', content: 'value' },
] as const;
const roleOf = (role: unknown) => (typeof role === 'string' ? ROLES.sharegpt[role] : undefined);

/**
 * A prompt given as a conversation: the last user turn is the prompt (generation and judging see a single turn), the
 * assistant turn after it, when there is one, the reference.
 */
function conversationPrompt(
  source: string,
  rec: SourceRecord,
  list: (typeof TURN_LISTS)[number],
): { instruction: string; reference?: string } {
  const turns = rec.value[list.field];
  if (!Array.isArray(turns) || turns.length === 0) {
    fail(source, rec, `field "${list.field}" must be a non-empty list of turns, found ${kindOf(turns)}`, list.field);
  }
  turns.forEach((turn: unknown, i) => {
    if (!isPlainObject(turn)) {
      fail(source, rec, `field "${list.field}[${i}]" must be an object, found ${kindOf(turn)}`, `${list.field}[${i}]`);
    }
  });
  const roles = (turns as Array<Record<string, unknown>>).map((t) => t[list.role]);
  const last = roles.findLastIndex((r) => roleOf(r) === 'user');
  if (last === -1) fail(source, rec, `field "${list.field}" has no user turn to use as the prompt`, list.field);
  const turn: SourceRecord = { ...rec, value: turns[last] as Record<string, unknown> };
  const instruction = requiredString(source, turn, list.content, true);
  const next = turns[last + 1] as Record<string, unknown> | undefined;
  const reference =
    next !== undefined && roleOf(next[list.role]) === 'assistant'
      ? optionalString(source, { ...rec, value: next }, list.content, `${list.field}[${last + 1}].${list.content}`)
      : undefined;
  return reference === undefined ? { instruction } : { instruction, reference };
}

/**
 * Builds the prompt of each record of a benchmark file; ids are checked unique across calls. `name` selects the field
 * layout (BENCHMARK_FORMATS: `vicuna`, `koala`, `sinstruct`, `wizardlm`, `anthropic`, `oasst`, matched as a substring
 * like the released scripts do); any other name takes the first present of PROMPT_FIELDS and of `id` /
 * `question_id` / `idx`.
 */
export function benchmarkPromptBuilder(source: string, name: string): (rec: SourceRecord) => BenchmarkPrompt {
  const format = benchmarkFormat(name);
  const checkId = uniqueIds(source);
  return (rec) => {
    const promptField = format?.promptField ?? PROMPT_FIELDS.find((f) => f in rec.value);
    const turnList = promptField === undefined ? TURN_LISTS.find((l) => l.field in rec.value) : undefined;
    if (promptField === undefined && turnList === undefined) {
      fail(
        source,
        rec,
        `missing a prompt field (one of ${PROMPT_FIELDS.map((f) => `"${f}"`).join(', ')}, ` +
          'or a "messages" or "conversations" list of turns)',
      );
    }
    let instruction: string;
    let input = '';
    let reference: string | undefined;
    if (turnList !== undefined) {
      ({ instruction, reference } = conversationPrompt(source, rec, turnList));
    } else {
      instruction = requiredString(source, rec, promptField!, true);
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
  };
}

/**
 * The prompts of the input's `i`th benchmark, read record by record in any file type a dataset may have: what
 * `pift validate` checks is what the run's benchmark step keeps. Errors name the file, the record and the field.
 */
export async function* benchmarkPrompts(
  deps: Pick<ActivityDeps, 'env' | 'fileRoots' | 'workDir'>,
  [i, bench]: [number, BenchmarkRef],
  maxRowBytes: number | undefined,
): AsyncGenerator<BenchmarkPrompt> {
  const file = new DatasetRows(deps, bench.uri, { field: `input.evaluation.benchmarks[${i}].uri`, maxRowBytes });
  const build = benchmarkPromptBuilder(file.source, bench.name);
  for await (const rec of file.records()) yield build(rec);
}
