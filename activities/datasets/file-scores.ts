import { createHash, hash as digest } from 'node:crypto';
import { log } from '@temporalio/activity';
import { InvalidDataError } from '../../common/failures';
import { openUserFile } from './read-user-file';
import { IdTable } from './id-table';
import { kindOf } from './json-records';
import { scoredText, type AlpacaRow } from './rows';
import { unpackedBytes, utf8Chunks } from './text-stream';
import type { ActivityDeps } from '../deps';
import type { ScoreInput, ScoreRow } from '../types';

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

type ScoreRecord = { value: Record<string, unknown>; where: Where };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function lineRecord(raw: string, where: Where): ScoreRecord | undefined {
  if (raw.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    fail(where, 'invalid JSON');
  }
  if (!isObject(value)) fail(where, `expected a JSON object, found ${kindOf(value)}`);
  return { value, where };
}

function* arrayRecords(body: string, file: string): Generator<ScoreRecord> {
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
}

/**
 * The objects of a score file with where each one is, for messages, as its text arrives: JSONL one line at a time. A
 * JSON array is still parsed whole (its text held until the end), since its messages name the array as a whole; JSONL
 * is the format for files too large for that.
 */
async function* records(chunks: AsyncIterable<string>, file: string): AsyncGenerator<ScoreRecord> {
  let mode: 'unknown' | 'array' | 'jsonl' = 'unknown';
  let started = false;
  let pending = '';
  const array: string[] = [];
  let line = 0;
  for await (const chunk of chunks) {
    let text = chunk;
    if (!started && text.length) {
      started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (mode === 'unknown') {
      pending += text;
      const head = pending.trimStart();
      if (head === '') continue;
      mode = head.startsWith('[') ? 'array' : 'jsonl';
      text = pending;
      pending = '';
    }
    if (mode === 'array') {
      array.push(text);
      continue;
    }
    const buffered = pending + text;
    let from = 0;
    for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n', from)) {
      line += 1;
      const rec = lineRecord(buffered.slice(from, nl), { file, line });
      if (rec) yield rec;
      from = nl + 1;
    }
    pending = buffered.slice(from);
  }
  if (mode === 'array') {
    yield* arrayRecords(array.join(''), file);
    return;
  }
  // The last line, which has no line break after it (blank when the file ends with one).
  const rec = lineRecord(pending, { file, line: line + 1 });
  if (rec) yield rec;
}

const textKey = (text: string) => text.trim();

/**
 * The key a score is found by: `i` + the dataset id, or `t` + the first 132 bits of the sha256 of the user text, so a
 * released row costs 23 bytes however long its instruction (two different texts share a key with odds near 2^-132 a
 * pair, far below any chance of a disk error).
 */
const idKey = (id: string) => `i${id}`;
const userTextKey = (text: string) => `t${digest('sha256', textKey(text), 'base64').slice(0, 22)}`;

/**
 * The scores of every file, by dataset id and by user text (released format), kept compactly: the keys in an IdTable
 * (their bytes in one buffer), each entry's score and where it was given in arrays of unboxed numbers, about 60 bytes
 * an entry where Maps of full strings and objects cost several hundred.
 */
class ScoreIndex {
  private readonly keys = new IdTable();
  private readonly scores: number[] = [];
  /** Entry i was given at line (or item) positions[i] of the last of `files` whose entries start at or before i. */
  private readonly positions: number[] = [];
  private readonly files: Array<{ file: string; array: boolean; from: number }> = [];
  /** Released-format rows whose user text was given twice with different scores: the first one is used. */
  conflicts = 0;

  add(where: Where, value: Record<string, unknown>): void {
    if (!('score' in value)) fail(where, 'missing required field "score"', 'score');
    const score = scoreValue(value.score);
    if (score === undefined) {
      fail(
        where,
        `field "score" must be a number from ${SCORE_MIN} to ${SCORE_MAX} (or one as a string), found ${kindOf(value.score)}`,
        'score',
      );
    }
    if ('data' in value) {
      const data = value.data;
      if (!Array.isArray(data) || typeof data[0] !== 'string')
        fail(where, `field "data" must be an array [user, response] of strings, found ${kindOf(data)}`, 'data');
      const first = this.keys.firstLine(userTextKey(data[0] as string), this.scores.length);
      if (first === undefined) this.record(where, score);
      else if (this.scores[first] !== score) this.conflicts += 1;
      return;
    }
    const id = value.id;
    if (typeof id !== 'string' && typeof id !== 'number')
      fail(where, `field "id" must be a string or a number, found ${kindOf(id)}`, 'id');
    const first = this.keys.firstLine(idKey(String(id)), this.scores.length);
    if (first !== undefined) {
      const { file, array } = this.files.findLast((f) => f.from <= first)!;
      const given = array ? { file, item: this.positions[first] } : { file, line: this.positions[first] };
      fail(where, `duplicate id in field "id" (first given at ${at(given)})`, 'id');
    }
    this.record(where, score);
  }

  /** The score given for the row's id, else for its user text. */
  scoreOf(row: AlpacaRow): number | undefined {
    const entry = this.keys.lineOf(idKey(row.id)) ?? this.keys.lineOf(userTextKey(scoredText(row)));
    return entry === undefined ? undefined : this.scores[entry];
  }

  private record(where: Where, score: number): void {
    const last = this.files.at(-1);
    const array = where.line === undefined;
    if (last?.file !== where.file || last.array !== array)
      this.files.push({ file: where.file, array, from: this.scores.length });
    this.scores.push(score);
    this.positions.push(where.line ?? where.item!);
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
    // The dataset's own `score` field (the row builders keep other fields in `extra`).
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
  const index = new ScoreIndex();
  const read: Array<{ source: string; sha: string }> = [];
  for (const [i, uri] of files.entries()) {
    const field = `input.scorer.files[${i}]`;
    const { opened: stream, source } = await openUserFile(deps, uri, field, (store, key) => store.getStream(key));
    // Gzip unpacked and UTF-8 checked on the way, `hash` fed the bytes.
    const hash = createHash('sha256');
    try {
      for await (const { value, where } of records(utf8Chunks(unpackedBytes(stream, source), source, hash), source))
        index.add(where, value);
    } finally {
      // Also when a bad entry stops the reading: the file handle or the S3 connection is released.
      stream.destroy();
    }
    read.push({ source, sha: hash.digest('hex') });
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
      const score = index.scoreOf(row);
      return score === undefined
        ? { id: row.id, score: null, scorer: label, promptSha256: '', error: `no score for this row in ${names}` }
        : { id: row.id, score, scorer: label, promptSha256: '' };
    },
  };
}
