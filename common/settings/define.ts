// Helpers that attach a setting's documentation to its schema, so the settings table (docs/settings.md), the JSON
// Schema files and the validator all read one definition. Workflow-safe: TypeBox only.
import { Type, type ObjectOptions, type Static, type TObject, type TProperties, type TSchema } from '@sinclair/typebox';

/** Where a default comes from, as docs/settings.md tags it. */
export type Source = 'paper' | 'repo' | 'unverified' | 'ours' | 'worker';
const SOURCES: readonly Source[] = ['paper', 'repo', 'unverified', 'ours', 'worker'];

/** JSON Schema annotation keywords of our own; the validator registers them so strict mode accepts them. */
export const SOURCE_KEYWORD = 'x-source';
export const DEFAULT_TEXT_KEYWORD = 'x-default';

/**
 * A setting's documentation: what it does, keyed by where its default comes from (`{ paper: '…' }`), or by
 * `description` when there is none to cite. `defaultText` says how the default is found when it is not one fixed
 * value (worker environment, base model, workflow id).
 */
export type Doc = { [K in Source | 'description']: { [k in K]: string } }[Source | 'description'] & {
  defaultText?: string;
};

type Defaulted<T extends TSchema> = T & { default: Static<T> };

function annotate<T extends TSchema>(schema: T, doc: Doc): T {
  const source = SOURCES.find((s) => s in doc);
  // A copy (symbol keys included), so a shared sub-schema never carries another field's annotations.
  return {
    ...schema,
    description: (doc as Record<string, string>)[source ?? 'description'],
    ...(source ? { [SOURCE_KEYWORD]: source } : {}),
    ...(doc.defaultText ? { [DEFAULT_TEXT_KEYWORD]: doc.defaultText } : {}),
  };
}

/** A setting the user may leave out; ajv (useDefaults) fills `value` in. */
export function withDefault<T extends TSchema>(schema: T, value: Static<T>, doc: Doc) {
  return Type.Optional({ ...annotate(schema, doc), default: value } as Defaulted<T>);
}

/** A setting the user may leave out that has no single fixed default (`doc.defaultText` says what happens). */
export function optional<T extends TSchema>(schema: T, doc: Doc) {
  return Type.Optional(annotate(schema, doc));
}

/** A setting the user must give. */
export function required<T extends TSchema>(schema: T, doc: Doc): T {
  return annotate(schema, doc);
}

/** An object that refuses unknown fields, so a misspelt setting fails validation instead of being ignored. */
export const strict = <P extends TProperties>(properties: P, options: ObjectOptions = {}) =>
  Type.Object(properties, { additionalProperties: false, ...options });

/** A string enum as JSON Schema `enum` (clearer validation errors than TypeBox's union of literals). */
export function stringEnum<const V extends readonly string[]>(values: V) {
  return Type.Unsafe<V[number]>({ type: 'string', enum: [...values] });
}

type DefaultedKeys<T extends TObject> = {
  [K in keyof T['properties']]: T['properties'][K] extends { default: unknown } ? K : never;
}[keyof T['properties']];

/** The object ajv returns after filling defaults: settings with a default are always present. */
export type Filled<T extends TObject> = Prettify<
  Static<T> & { [K in DefaultedKeys<T> & keyof Static<T>]-?: Exclude<Static<T>[K], undefined> }
>;

export type Prettify<T> = { [K in keyof T]: T[K] } & {};
