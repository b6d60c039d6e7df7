import { log } from '@temporalio/activity';
import { InvalidDataError } from '../../common/failures';
import { sha256 } from '../artifacts/hashing';
import { kindOf, type AlpacaRow } from '../datasets/parse';
import { readUserFile } from '../datasets/read-user-file';
import type { ActivityDeps } from '../deps';
import type { ScoreRow } from './score-difficulty';
import { scoredText } from './score-prompt';
import type { ScoreInput } from '../types';

/**
 * Scores one already has (`scorer.kind: "file"`): the paper's released PhasedSFT files, scores from an earlier run,
 * or a `score` field of the dataset itself. Nothing is asked of any model, and rows left without a score count as
 * failed rows against `scorer.maxFailedFraction`, like answers that could not be parsed.
 *
 * A score file is JSONL (one object a line) or a JSON array of objects, with `score` a number or a numeric string
 * (the released files write `"score": "4\n\n"`) from 1 to 5 with any number of decimals (the released scores are
 * means of several ratings: 4.125, 4.166666666666667). A row with `data` is in the released format,
 * `{"id", "score", "data": [user, response]}`, and is matched by its user text (the instruction, plus "\n" + input
 * when there is one), since its id numbers the paper's copy of the data; any other row is matched by `id`.
 */

export const SCORE_MIN = 1;
export const SCORE_MAX = 5;

/** Any plain decimal: `4`, `4.`, `4.125`; no sign, exponent or leading dot. */
const DECIMAL = /^\d+(?:\.\d*)?$/;

/** One score value as found in a file: a number or a numeric string; undefined when it is neither. */
export function scoreValue(value: unknown): number | undefined {
  const n =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && DECIMAL.test(value.trim())
        ? Number(value.trim())
        : NaN;
  return Number.isFinite(n) && n >= SCORE_MIN && n <= SCORE_MAX ? n : undefined;
}

type Where = { file: string; line?: number; item?: number };

const at = (w: Where) => (w.line !== undefined ? `${w.file} line ${w.line}` : `${w.file} item ${w.item}`);

function fail(w: Where, message: string, field?: string): never {
  throw new InvalidDataError(`${at(w)}: ${message}`, { file: w.file, line: w.line, field });
}

/** The objects of a score file with where each one is, for messages. */
function* records(text: string, file: string): Generator<{ value: Record<string, unknown>; where: Where }> {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (body.trimStart().startsWith('[')) {
    let items: unknown;
    try {
      items = JSON.parse(body);
    } catch {
      throw new InvalidDataError(`${file}: not a valid JSON array of score objects`, { file });
    }
    const list = items as unknown[];
    for (let item = 0; item < list.length; item++) {
      const where = { file, item };
      if (!isObject(list[item])) fail(where, `expected a JSON object, found ${kindOf(list[item])}`);
      yield { value: list[item] as Record<string, unknown>, where };
    }
    return;
  }
  let line = 0;
  for (const raw of body.split('\n')) {
    line += 1;
    if (raw.trim() === '') continue;
    const where = { file, line };
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      fail(where, 'invalid JSON');
    }
    if (!isObject(value)) fail(where, `expected a JSON object, found ${kindOf(value)}`);
    yield { value, where };
  }
}

const textKey = (text: string) => text.trim();

/** Where each score came from, kept for the first message about a conflict. */
interface Found {
  score: number;
  where: Where;
}

/** The scores of every file, by dataset id and by user text (released format). */
interface ScoreIndex {
  byId: Map<string, Found>;
  byText: Map<string, Found>;
  /** Released-format rows whose user text was given twice with different scores: the first one is used. */
  conflicts: number;
  rows: number;
}

function indexFile(text: string, file: string, index: ScoreIndex): void {
  for (const { value, where } of records(text, file)) {
    index.rows += 1;
    if (!('score' in value)) fail(where, 'missing required field "score"', 'score');
    const score = scoreValue(value.score);
    if (score === undefined) {
      fail(
        where,
        `field "score" must be a number from ${SCORE_MIN} to ${SCORE_MAX} (or one as a string), found ${kindOf(value.score)}`,
        'score',
      );
    }
    const found = { score, where };
    if ('data' in value) {
      const data = value.data;
      if (!Array.isArray(data) || typeof data[0] !== 'string')
        fail(where, `field "data" must be an array [user, response] of strings, found ${kindOf(data)}`, 'data');
      const key = textKey(data[0] as string);
      const first = index.byText.get(key);
      if (first === undefined) index.byText.set(key, found);
      else if (first.score !== score) index.conflicts += 1;
      continue;
    }
    const id = value.id;
    if (typeof id !== 'string' && typeof id !== 'number')
      fail(where, `field "id" must be a string or a number, found ${kindOf(id)}`, 'id');
    const first = index.byId.get(String(id));
    if (first !== undefined) fail(where, `duplicate id in field "id" (first given at ${at(first.where)})`, 'id');
    index.byId.set(String(id), found);
  }
}

/** The scorer the score step uses for `kind: "file"`: every row's score looked up, none asked for. */
export interface FileScorer {
  label: string;
  offline: boolean;
  score: (row: AlpacaRow) => Promise<ScoreRow>;
}

/** Names a scorer by its files and their sha256, so a changed file is a different scorer (and a new inputs hash). */
const fileLabel = (files: Array<{ source: string; sha: string }>) =>
  `file:${files.map((f) => `${f.source}@sha256:${f.sha}`).join(',')}`;

export async function fileScorer(
  deps: ActivityDeps,
  input: ScoreInput,
  dataset: { sha256: string; source: string },
): Promise<FileScorer> {
  const files = input.scorer.files ?? [];
  if (files.length === 0) {
    // The dataset's own `score` field (parseAlpaca keeps other fields in `extra`).
    const label = `file:${dataset.source}@sha256:${dataset.sha256}#score`;
    return {
      label,
      offline: true,
      score: async (row) => {
        const found = row.extra?.score;
        const score = found === undefined || found === null ? undefined : scoreValue(found);
        if (found !== undefined && found !== null && score === undefined)
          throw new InvalidDataError(
            `${dataset.source}: row ${row.id}: field "score" must be a number from ${SCORE_MIN} to ${SCORE_MAX} (or one as a string), found ${kindOf(found)}`,
            { file: dataset.source, field: 'score' },
          );
        return score === undefined
          ? { id: row.id, score: null, scorer: label, promptSha256: '', error: 'no "score" field in the dataset row' }
          : { id: row.id, score, scorer: label, promptSha256: '' };
      },
    };
  }
  const index: ScoreIndex = { byId: new Map(), byText: new Map(), conflicts: 0, rows: 0 };
  const read: Array<{ source: string; sha: string }> = [];
  for (const [i, uri] of files.entries()) {
    const { text, source } = await readUserFile(deps, uri, `input.scorer.files[${i}]`);
    indexFile(text, source, index);
    read.push({ source, sha: sha256(text) });
  }
  if (index.conflicts)
    log.warn('score files give some user texts different scores; the first one is used', {
      conflicts: index.conflicts,
    });
  const label = fileLabel(read);
  const names = read.map((f) => f.source).join(', ');
  return {
    label,
    offline: true,
    score: async (row) => {
      const found = index.byId.get(row.id) ?? index.byText.get(textKey(scoredText(row)));
      return found === undefined
        ? { id: row.id, score: null, scorer: label, promptSha256: '', error: `no score for this row in ${names}` }
        : { id: row.id, score: found.score, scorer: label, promptSha256: '' };
    },
  };
}
