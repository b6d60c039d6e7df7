import { createHash, hash as digest } from 'node:crypto';
import { log } from '@temporalio/activity';
import { SCORE_MAX, SCORE_MIN } from '../../common/constants';
import { InvalidDataError } from '../../common/failures';
import { openUserFile } from './read-dataset';
import { IdTable } from './id-table';
import { fail, jsonRecords, kindOf, placeOf, type Place } from './json-records';
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

/** The complaint about a score value out of range or not a number; it names the kind of value, never the value. */
const notAScore = (value: unknown) =>
  `field "score" must be a number from ${SCORE_MIN} to ${SCORE_MAX} (or one as a string), found ${kindOf(value)}`;

/** A row's score, or null with why there is none. */
const scoreRow = (id: string, scorer: string, score: number | undefined, error: string): ScoreRow =>
  score === undefined ? { id, score: null, scorer, promptSha256: '', error } : { id, score, scorer, promptSha256: '' };

type ScoreRecord = Place & { value: Record<string, unknown> };

/**
 * The objects of a score file with where each one is, for messages, split as a dataset's records are (jsonRecords):
 * JSONL entries are named by their line, a JSON array's by their item. An array's entries are held until it has been
 * read whole, so a damaged array is named as a whole; JSONL is the format for files too large for that. An empty file
 * gives no entries.
 */
async function* records(chunks: AsyncIterable<string>, file: string): AsyncGenerator<ScoreRecord> {
  let array: boolean | undefined;
  async function* sniffed() {
    for await (const text of chunks) {
      array ??= text.trim() === '' ? undefined : text.trimStart().startsWith('[');
      yield text;
    }
  }
  const items: ScoreRecord[] = [];
  try {
    for await (const { value, line, index } of jsonRecords(sniffed(), file, Infinity)) {
      if (array) items.push({ value, line: index, unit: 'item' });
      else yield { value, line };
    }
  } catch (err) {
    if (!(err instanceof InvalidDataError)) throw err;
    if (err.message.endsWith(': dataset is empty')) return;
    // jsonRecords' words for datasets, restated as score files always said them.
    const item = / item (\d+) must be a JSON object, (found .*)$/.exec(err.message);
    if (item) fail(file, { line: Number(item[1]), unit: 'item' }, `expected a JSON object, ${item[2]}`);
    if (array) throw new InvalidDataError(`${file}: not a valid JSON array of score objects`, { file });
    if (err.message.includes(': invalid JSON (')) fail(file, { line: err.where.line! }, 'invalid JSON');
    throw err;
  }
  yield* items;
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
  private readonly files: Array<{ file: string; unit: Place['unit']; from: number }> = [];
  /** Released-format rows whose user text was given twice with different scores: the first one is used. */
  conflicts = 0;

  add(file: string, rec: ScoreRecord): void {
    const { value } = rec;
    if (!('score' in value)) fail(file, rec, 'missing required field "score"', 'score');
    const score = scoreValue(value.score);
    if (score === undefined) fail(file, rec, notAScore(value.score), 'score');
    if ('data' in value) {
      const data = value.data;
      if (!Array.isArray(data) || typeof data[0] !== 'string')
        fail(file, rec, `field "data" must be an array [user, response] of strings, found ${kindOf(data)}`, 'data');
      const first = this.keys.firstLine(userTextKey(data[0] as string), this.scores.length);
      if (first === undefined) this.record(file, rec, score);
      else if (this.scores[first] !== score) this.conflicts += 1;
      return;
    }
    const id = value.id;
    if (typeof id !== 'string' && typeof id !== 'number')
      fail(file, rec, `field "id" must be a string or a number, found ${kindOf(id)}`, 'id');
    const first = this.keys.firstLine(idKey(String(id)), this.scores.length);
    if (first !== undefined) {
      const given = this.files.findLast((f) => f.from <= first)!;
      const at = placeOf(given.file, { line: this.positions[first], unit: given.unit });
      fail(file, rec, `duplicate id in field "id" (first given at ${at})`, 'id');
    }
    this.record(file, rec, score);
  }

  /** The score given for the row's id, else for its user text. */
  scoreOf(row: AlpacaRow): number | undefined {
    const entry = this.keys.lineOf(idKey(row.id)) ?? this.keys.lineOf(userTextKey(scoredText(row)));
    return entry === undefined ? undefined : this.scores[entry];
  }

  private record(file: string, { line, unit }: Place, score: number): void {
    const last = this.files.at(-1);
    if (last?.file !== file || last.unit !== unit) this.files.push({ file, unit, from: this.scores.length });
    this.scores.push(score);
    this.positions.push(line);
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
          throw new InvalidDataError(`${dataset.source}: row ${row.id}: ${notAScore(found)}`, {
            file: dataset.source,
            field: 'score',
          });
        return scoreRow(row.id, label, score, 'no "score" field in the dataset row');
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
      for await (const rec of records(utf8Chunks(unpackedBytes(stream, source), source, hash), source))
        index.add(source, rec);
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
    score: async (row) => scoreRow(row.id, label, index.scoreOf(row), `no score for this row in ${names}`),
  };
}
