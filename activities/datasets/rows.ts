/**
 * The rows of a training dataset, whatever layout the file uses, and the one shape every later step sees.
 *
 * Row shape (score/dataset.jsonl, segment/stage-k.jsonl, one-off.jsonl, heldout.jsonl; the trainer reads the same):
 * - Alpaca: `{ id, instruction, input, output }` exactly as before (input '' when absent), so the paper's path and
 *   every hash of it are unchanged.
 * - Conversation (ShareGPT `conversations` or OpenAI-style `messages`): `{ id, instruction, input: '', output,
 *   messages }` where `messages` is `[{ role: 'system' | 'user' | 'assistant', content }]`: an optional system message
 *   first, then user and assistant turns alternating, starting with a user turn and ending with an assistant turn.
 *   `instruction` is the last user turn and `output` the assistant answer to it, so that generation and judging (and
 *   every step that only knows Alpaca rows) use the conversation's last user turn as the prompt and its answer as the
 *   reference. A trainer that sees `messages` trains on the conversation (chat template, loss on assistant turns).
 *
 * Other fields of a row are kept in `extra` while reading, and not written to the run's dataset.
 */
import type { DatasetColumns } from '../../common/settings/schema';
import { IdTable } from './id-table';
import { fail, isPlainObject, kindOf, type Place, type SourceRecord } from './json-records';

export type DatasetLayout = 'alpaca' | 'sharegpt' | 'messages';

/** Field names of the file for each part of a row, like LLaMA-Factory's `columns` (the input setting datasetColumns). */
export type { DatasetColumns };

export interface AlpacaRow {
  /** The row's `id` (string, or number turned into a string), else `L<line>` (JSONL) or `I<index>` (others). */
  id: string;
  instruction: string;
  /** '' when the row has no input. */
  input: string;
  output: string;
  /** Any other fields of the row (`family`, `score`, ...), kept as they were; absent when there are none. */
  extra?: Record<string, unknown>;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ConversationRow extends AlpacaRow {
  messages: ChatMessage[];
}

export type DatasetRow = AlpacaRow | ConversationRow;

export const isConversation = (row: DatasetRow): row is ConversationRow => 'messages' in row;

/** What is scored: the instruction, plus "\n" + input when the row has a non-empty input (as the released data). */
export function scoredText(row: { instruction: string; input?: string }): string {
  return row.input ? `${row.instruction}\n${row.input}` : row.instruction;
}

/** The row as the run's dataset file keeps it: Alpaca rows exactly as before, conversations with their turns. */
export function storedRow(row: DatasetRow): Omit<ConversationRow, 'extra'> | Omit<AlpacaRow, 'extra'> {
  const { id, instruction, input, output } = row;
  return isConversation(row)
    ? { id, instruction, input, output, messages: row.messages }
    : { id, instruction, input, output };
}

export const SUPPORTED_LAYOUTS =
  'Alpaca ("instruction", "output", optional "input"), ShareGPT ("conversations": [{"from", "value"}]) or ' +
  'OpenAI messages ("messages": [{"role", "content"}])';

/** Role names of each layout, mapped to ours. ShareGPT files in the wild use both spellings. */
export const ROLES: Record<'sharegpt' | 'messages', Record<string, ChatMessage['role']>> = {
  sharegpt: { human: 'user', user: 'user', gpt: 'assistant', assistant: 'assistant', system: 'system' },
  messages: { user: 'user', assistant: 'assistant', system: 'system' },
};
/** The role names an error lists as allowed (ShareGPT's `user` and `assistant` spellings are read, not advertised). */
const ROLE_NAMES = { sharegpt: '"human", "gpt", "system"', messages: '"user", "assistant", "system"' };
const TURN_KEYS = { sharegpt: { role: 'from', content: 'value' }, messages: { role: 'role', content: 'content' } };

/** A short description of what keys a record has, for the unknown-layout error; key names only, never values. */
function keysFound(value: Record<string, unknown>): string {
  const keys = Object.keys(value);
  if (keys.length === 0) return 'no fields';
  const shown = keys.slice(0, 12).map((k) => JSON.stringify(k.length > 40 ? `${k.slice(0, 40)}…` : k));
  return `fields ${shown.join(', ')}${keys.length > shown.length ? ` and ${keys.length - shown.length} more` : ''}`;
}

/** The layout a record has, from its keys (after the column mapping). */
export function detectLayout(source: string, rec: SourceRecord, columns: DatasetColumns): DatasetLayout {
  const v = rec.value;
  const turns = columns.messages !== undefined ? v[columns.messages] : (v.messages ?? v.conversations);
  if (turns !== undefined) {
    const first: unknown = Array.isArray(turns) ? turns[0] : undefined;
    if (isPlainObject(first) && ('from' in first || 'value' in first)) return 'sharegpt';
    if (isPlainObject(first) && ('role' in first || 'content' in first)) return 'messages';
    if (columns.messages === undefined && 'conversations' in v && !('messages' in v)) return 'sharegpt';
    if (typeof turns === 'string') return 'messages'; // checked (and refused) by the builder, naming the field
    return columns.messages === undefined && 'messages' in v ? 'messages' : 'sharegpt';
  }
  if ((columns.instruction ?? 'instruction') in v) return 'alpaca';
  const mapping = Object.keys(columns).length ? ` with datasetColumns ${JSON.stringify(columns)}` : '';
  fail(
    source,
    rec,
    `unknown row layout${mapping}: found ${keysFound(v)}; supported: ${SUPPORTED_LAYOUTS}, in JSONL, JSON, Parquet ` +
      'or CSV; map other field names with the input setting datasetColumns',
    'datasetColumns',
  );
}

export function requiredString(source: string, rec: SourceRecord, field: string, nonEmpty: boolean): string {
  if (!(field in rec.value)) fail(source, rec, `missing required field "${field}"`, field);
  return checkedString(source, rec, rec.value[field], field, nonEmpty);
}

function checkedString(source: string, rec: SourceRecord, value: unknown, field: string, nonEmpty: boolean): string {
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
export function optionalString(source: string, rec: SourceRecord, field: string, label = field): string | undefined {
  const value = rec.value[field];
  return value === undefined || value === null ? undefined : checkedString(source, rec, value, label, false);
}

/** The row's own id (string or number), or undefined when it has none under `field`. */
export function givenId(source: string, rec: SourceRecord, field: string): string | undefined {
  const value = rec.value[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'bigint') return String(value); // Parquet INT64
  if (typeof value === 'string' && value.trim() !== '') return value;
  fail(source, rec, `field "${field}" must be a non-empty string or a number, found ${kindOf(value)}`, field);
}

export function defaultId(rec: SourceRecord): string {
  return rec.index >= 0 ? `I${rec.index}` : `L${rec.line}`;
}

/** The field a row's id is read from, in every layout. */
export const idFieldOf = (columns: DatasetColumns): string => columns.id ?? 'id';

/** The error for an id used again at `rec`; the id itself is file content: the two lines say where to look. */
export function duplicateId(source: string, rec: Place, field: string, first: number): never {
  fail(source, rec, `duplicate id in field "${field}" (first used on ${rec.unit ?? 'line'} ${first})`, field);
}

/**
 * Checks ids are unique across a benchmark file (given and generated alike), at the row that repeats one. A dataset's
 * rows are checked by the row engine instead, after the last row (see DatasetRows and id-check.ts).
 */
export function uniqueIds(source: string): (rec: SourceRecord, id: string, field: string) => void {
  const seen = new IdTable();
  return (rec, id, field) => {
    const first = seen.firstLine(id, rec.line);
    if (first !== undefined) duplicateId(source, rec, field, first);
  };
}

function extraOf(value: Record<string, unknown>, known: Set<string>): Record<string, unknown> | undefined {
  const keys = Object.keys(value).filter((k) => !known.has(k));
  return keys.length > 0 ? Object.fromEntries(keys.map((k) => [k, value[k]])) : undefined;
}

/**
 * Alpaca rows: `instruction` (non-empty string) and `output` (string) are required; `input` is an optional string
 * (absent or null reads as ''); `id` is an optional string or number. `columns` renames them.
 */
export function alpacaRowBuilder(source: string, columns: DatasetColumns = {}): (rec: SourceRecord) => AlpacaRow {
  const f = {
    id: idFieldOf(columns),
    instruction: columns.instruction ?? 'instruction',
    input: columns.input ?? 'input',
    output: columns.output ?? 'output',
  };
  const known = new Set(Object.values(f));
  return (rec) => {
    const instruction = requiredString(source, rec, f.instruction, true);
    const input = optionalString(source, rec, f.input) ?? '';
    const output = requiredString(source, rec, f.output, false);
    const id = givenId(source, rec, f.id) ?? defaultId(rec);
    const row: AlpacaRow = { id, instruction, input, output };
    const extra = extraOf(rec.value, known);
    if (extra) row.extra = extra;
    return row;
  };
}

/** A role value for messages: a short role-like name is shown (it says what is unsupported), anything else by kind. */
const roleShown = (value: unknown): string =>
  typeof value === 'string' && /^[A-Za-z_]{1,24}$/.test(value) ? JSON.stringify(value) : kindOf(value);

/** A list of turns given as JSON text (a CSV cell) is parsed; anything else is taken as it is. */
function turnsValue(source: string, rec: SourceRecord, field: string): unknown {
  const value = rec.value[field];
  if (typeof value !== 'string' || !value.trimStart().startsWith('[')) return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    fail(source, rec, `field "${field}" holds text that is not a JSON list of turns`, field);
  }
}

/**
 * Conversation rows (see the file comment): ShareGPT turns `{from: human | gpt | system, value}` or OpenAI turns
 * `{role: user | assistant | system, content}`; a system prompt may also come from the `system` column.
 */
export function conversationRowBuilder(
  source: string,
  layout: 'sharegpt' | 'messages',
  columns: DatasetColumns = {},
): (rec: SourceRecord) => ConversationRow {
  // Turns are keyed by the layout (from/value or role/content), not by the list's name: axolotl's files keep
  // role/content turns under `conversations`, and LLaMA-Factory's sharegpt files may name theirs `messages`.
  const ownField = layout === 'sharegpt' ? 'conversations' : 'messages';
  const otherField = layout === 'sharegpt' ? 'messages' : 'conversations';
  const fieldOf = (rec: SourceRecord) =>
    columns.messages ?? (ownField in rec.value || !(otherField in rec.value) ? ownField : otherField);
  const systemField = columns.system ?? 'system';
  const idField = idFieldOf(columns);
  const known = new Set([columns.messages ?? ownField, columns.messages ?? otherField, systemField, idField]);
  const keys = TURN_KEYS[layout];
  const roles = ROLES[layout];
  return (rec) => {
    const turnsField = fieldOf(rec);
    if (!(turnsField in rec.value)) fail(source, rec, `missing required field "${turnsField}"`, turnsField);
    const turns = turnsValue(source, rec, turnsField);
    if (!Array.isArray(turns) || turns.length === 0) {
      fail(source, rec, `field "${turnsField}" must be a non-empty list of turns, found ${kindOf(turns)}`, turnsField);
    }
    const messages: ChatMessage[] = [];
    const system = optionalString(source, rec, systemField);
    if (system !== undefined && system !== '') messages.push({ role: 'system', content: system });
    turns.forEach((turn: unknown, i) => {
      const where = `${turnsField}[${i}]`;
      if (!isPlainObject(turn)) fail(source, rec, `field "${where}" must be an object, found ${kindOf(turn)}`, where);
      const roleField = `${where}.${keys.role}`;
      if (!(keys.role in turn)) fail(source, rec, `missing required field "${roleField}"`, roleField);
      const role = roles[String(turn[keys.role])];
      if (typeof turn[keys.role] !== 'string' || role === undefined) {
        fail(
          source,
          rec,
          `field "${roleField}" must be one of ${ROLE_NAMES[layout]}, found ${roleShown(turn[keys.role])}`,
          roleField,
        );
      }
      const contentField = `${where}.${keys.content}`;
      if (!(keys.content in turn)) fail(source, rec, `missing required field "${contentField}"`, contentField);
      const content = checkedString(source, rec, turn[keys.content], contentField, role === 'user');
      const previous = messages.at(-1)?.role;
      const expected = previous === 'user' ? 'assistant' : 'user';
      // A system turn may only come first.
      if (role !== expected && !(role === 'system' && previous === undefined)) {
        const after = previous === undefined ? 'first' : `after a ${previous} turn`;
        fail(
          source,
          rec,
          `field "${roleField}": expected a ${expected} turn ${after}, found a ${role} turn ` +
            '(turns alternate user, assistant, ...; an optional system turn comes first)',
          roleField,
        );
      }
      messages.push({ role, content });
    });
    const last = messages[messages.length - 1];
    if (last.role !== 'assistant') {
      fail(
        source,
        rec,
        `field "${turnsField}" must end with an assistant turn, found a ${last.role} turn last`,
        turnsField,
      );
    }
    const id = givenId(source, rec, idField) ?? defaultId(rec);
    const row: ConversationRow = {
      id,
      instruction: messages[messages.length - 2].content,
      input: '',
      output: last.content,
      messages,
    };
    const extra = extraOf(rec.value, known);
    if (extra) row.extra = extra;
    return row;
  };
}

/** The row builder of a layout; ids are checked unique by the reader (see DatasetRows). */
export function rowBuilder(source: string, layout: DatasetLayout, columns: DatasetColumns = {}) {
  return layout === 'alpaca' ? alpacaRowBuilder(source, columns) : conversationRowBuilder(source, layout, columns);
}
