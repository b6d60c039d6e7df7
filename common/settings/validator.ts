// The ajv instance every settings schema is compiled with. Workflow-safe (ajv is plain JavaScript), though only
// activities and tests use it.
import Ajv from 'ajv';
import { DEFAULT_TEXT_KEYWORD, SOURCE_KEYWORD } from './define';

/** allErrors: every problem of an input is named at once; useDefaults: the schema's defaults are filled in. */
export function settingsValidator(): Ajv {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
  // Our documentation keywords; strict mode refuses any other unknown keyword (a typo in a schema).
  ajv.addVocabulary([SOURCE_KEYWORD, DEFAULT_TEXT_KEYWORD]);
  return ajv;
}
