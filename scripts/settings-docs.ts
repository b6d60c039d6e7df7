// Everything generated from the settings schemas: the checked-in JSON Schema files and the settings table of
// docs/settings.md.
// Pure functions of the schemas, build-time only (gen-schema.ts writes them; a test compares them with the files).
import type { TSchema } from '@sinclair/typebox';
import { DEFAULT_TEXT_KEYWORD, SOURCE_KEYWORD } from '../common/settings/define';
import { PipelineInputSchema } from '../common/settings/schema';
import { TrainerConfigSchema, trainerDefaults } from '../common/settings/trainer';
import { TrainerEventsSchema } from '../common/settings/trainer-events';

export const PIPELINE_INPUT_SCHEMA_FILE = 'schema/pipeline-input.schema.json';
export const TRAINER_CONFIG_SCHEMA_FILE = 'schema/trainer-config.schema.json';
export const SETTINGS_DOC_FILE = 'docs/settings.md';
export const TRAINER_EVENTS_SCHEMA_FILE = 'schema/trainer-events.schema.json';
/** Inside the trainer package (its package data), which reads its defaults from it. */
export const TRAINER_DEFAULTS_FILE = 'trainer/pift/configs/defaults.json';
export const TABLE_START = '<!-- settings-table:start -->';
export const TABLE_END = '<!-- settings-table:end -->';

type Json = Record<string, unknown>;

/** A schema as a file: JSON only (TypeBox's symbol keys drop out), with the draft it follows named first. */
export function jsonSchemaFile(schema: TSchema): string {
  const { title, description, ...rest } = schema as Json;
  const doc = { $schema: 'http://json-schema.org/draft-07/schema#', title, description, ...rest };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

const code = (v: unknown) => `\`${typeof v === 'string' ? v : JSON.stringify(v)}\``;
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function bounds(s: Json): string {
  const lo =
    s.minimum !== undefined ? `≥ ${s.minimum}` : s.exclusiveMinimum !== undefined ? `> ${s.exclusiveMinimum}` : '';
  const hi =
    s.maximum !== undefined ? `≤ ${s.maximum}` : s.exclusiveMaximum !== undefined ? `< ${s.exclusiveMaximum}` : '';
  return [lo, hi].filter(Boolean).join(', ');
}

/** What values a setting takes, in a few words. */
function kindOf(s: Json): string {
  if (Array.isArray(s.enum)) return s.enum.map(code).join(' / ');
  if (Array.isArray(s.anyOf)) return (s.anyOf as Json[]).map(kindOf).join(' or ');
  if (s.const !== undefined) return code(s.const);
  if (s.type === 'array') return `array of ${kindOf(s.items as Json)}`;
  if (s.type === 'string' && typeof s.pattern === 'string' && /minutes\?/.test(s.pattern)) return 'duration';
  if (s.type === 'object') return 'object';
  return [s.type, bounds(s)].filter(Boolean).join(' ');
}

function defaultOf(s: Json, isRequired: boolean): string {
  if ('default' in s) return code(s.default);
  if (typeof s[DEFAULT_TEXT_KEYWORD] === 'string') return s[DEFAULT_TEXT_KEYWORD];
  return isRequired ? 'required' : 'unset';
}

function rows(schema: Json, prefix: string): string[] {
  const properties = (schema.properties ?? {}) as Record<string, Json>;
  const requiredKeys = (schema.required ?? []) as string[];
  return Object.entries(properties).flatMap(([key, s]) => {
    const field = `${prefix}${key}`;
    // A group with a default is always there; one without (an opt-in such as training.lora) gets a row of its own.
    if (s.type === 'object' && s.properties && 'default' in s) return rows(s, `${field}.`);
    const nested = s.type === 'object' && s.properties ? rows(s, `${field}.`) : [];
    const source = typeof s[SOURCE_KEYWORD] === 'string' ? `[${s[SOURCE_KEYWORD]}]` : '';
    const cells = [
      code(field),
      kindOf(s),
      defaultOf(s, requiredKeys.includes(key)),
      source,
      String(s.description ?? ''),
    ];
    return [`| ${cells.map(cell).join(' | ')} |`, ...nested];
  });
}

/** The workflow input table of docs/settings.md: one row per setting, nested groups flattened to `group.field`. */
export function settingsTable(schema: TSchema = PipelineInputSchema): string {
  return ['| field | values | default | source | meaning |', '|---|---|---|---|---|', ...rows(schema, '')].join('\n');
}

/** `text` with the table between the markers replaced; the markers must be there, once each. */
export function withSettingsTable(text: string, table: string = settingsTable()): string {
  const start = text.indexOf(TABLE_START);
  const end = text.indexOf(TABLE_END);
  if (start < 0 || end < start || text.indexOf(TABLE_START, start + 1) >= 0) {
    throw new Error(`${SETTINGS_DOC_FILE} must hold ${TABLE_START} and then ${TABLE_END}, once each`);
  }
  return `${text.slice(0, start + TABLE_START.length)}\n${table}\n${text.slice(end)}`;
}

/** Every generated file, by repository path, given the current text of docs/settings.md. */
export function generatedFiles(settingsDoc: string): Record<string, string> {
  return {
    [PIPELINE_INPUT_SCHEMA_FILE]: jsonSchemaFile(PipelineInputSchema),
    [TRAINER_CONFIG_SCHEMA_FILE]: jsonSchemaFile(TrainerConfigSchema),
    [SETTINGS_DOC_FILE]: withSettingsTable(settingsDoc),
    [TRAINER_EVENTS_SCHEMA_FILE]: jsonSchemaFile(TrainerEventsSchema),
    [TRAINER_DEFAULTS_FILE]: `${JSON.stringify(trainerDefaults(), null, 2)}\n`,
  };
}
