/**
 * A training dataset read row by row, whatever its file type and layout: JSONL and JSON arrays (plain or gzip, read
 * as a text stream), CSV (plain or gzip, streamed through csv-parse) and Parquet (through the row engine, a chunk of
 * rows at a time). Only one record (or one chunk) is held at a time; the ids seen go to the row engine for the check
 * that ids are unique.
 */
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream';
import { parse as csvParse, CsvError } from 'csv-parse';
import { InvalidDataError } from '../../common/failures';
import { MAX_ROW_BYTES } from '../../common/settings/constants';
import { DATASET_FORMATS } from '../../common/settings/schema';
import { allowedLocation, localPathOf, NotFoundError, openObject, type ObjectStore } from '../../store';
import { sha256File } from '../artifacts/hashing';
import type { ActivityDeps } from '../deps';
import { literal, openRows } from '../rows/engine';
import { IdCheck } from './id-check';
import { jsonRecords, type SourceRecord } from './json-records';
import {
  detectLayout,
  duplicateId,
  idFieldOf,
  rowBuilder,
  type DatasetColumns,
  type DatasetLayout,
  type DatasetRow,
} from './rows';
import { unpackedBytes, utf8Chunks } from './text-stream';

type DatasetFileKind = 'jsonl' | 'json' | 'parquet' | 'csv';

/** `auto`, or `<layout>-<file kind>`: `alpaca-jsonl`, `sharegpt-parquet`, `messages-csv`, ... */
export type DatasetFormat = (typeof DATASET_FORMATS)[number];

export interface ReadDatasetOptions {
  /** Default 'auto': the file kind from the name (`.parquet`, `.csv`) or the content, the layout from the first row. */
  format?: DatasetFormat;
  columns?: DatasetColumns;
  /** Largest row in UTF-8 bytes (a JSONL line, a JSON array element, a CSV record). */
  maxRowBytes?: number;
  /** The input field that named the file, for messages (default `input.dataset`). */
  field?: string;
}

/**
 * Opens a file the run's input names (dataset, benchmark, score file): only from the worker's allowed local folders or
 * a remote store; a missing one is bad input naming `field`. `source` is the file's name, for messages.
 */
export async function openUserFile<T>(
  deps: Pick<ActivityDeps, 'env' | 'fileRoots'>,
  uri: string,
  field: string,
  read: (store: ObjectStore, key: string) => Promise<T>,
): Promise<{ opened: T; source: string }> {
  const { store, key } = openObject(allowedLocation(uri, deps.fileRoots, field), deps.env, { setting: field });
  try {
    return { opened: await read(store, key), source: basename(key) };
  } catch (err) {
    if (err instanceof NotFoundError)
      throw new InvalidDataError(`${field}: ${uri} does not exist`, { field, file: uri });
    throw err;
  }
}

/** The file kind of a dataset: given by its format, else by its name, else (JSON or JSONL) by its content. */
export function fileKindOf(name: string, format: DatasetFormat = 'auto'): DatasetFileKind | undefined {
  if (format !== 'auto') return format.slice(format.indexOf('-') + 1) as DatasetFileKind;
  const plain = name.toLowerCase().replace(/\.gz$/, '');
  if (plain.endsWith('.parquet') || plain.endsWith('.pq')) return 'parquet';
  if (plain.endsWith('.csv')) return 'csv';
  return undefined; // JSON or JSONL, told apart by the first character
}

/**
 * The rows of a dataset as an async iterable. After a complete iteration `sha256` is the digest of the file's
 * (unpacked) bytes, which for JSON and JSONL is the sha256 of the text a whole-file read gave, and `layout` and `rows`
 * say what was read. Each iteration reads the file again.
 *
 * An iteration checks that ids are unique once it has handed on the last row: a repeated id fails the iteration
 * there, with the same error (the repeat's line and the first use's) a check at each row gave, but after every row
 * was seen. A step that must not act on a file with repeated ids (a paid request, a stored output) reads it to the
 * end first.
 */
export class DatasetRows implements AsyncIterable<DatasetRow> {
  readonly source: string;
  sha256: string | undefined;
  layout: DatasetLayout | undefined;
  rows = 0;
  private readonly format: DatasetFormat;
  private readonly field: string;

  constructor(
    private readonly deps: Pick<ActivityDeps, 'env' | 'fileRoots' | 'workDir'>,
    private readonly uri: string,
    private readonly options: ReadDatasetOptions = {},
  ) {
    this.field = options.field ?? 'input.dataset';
    this.format = options.format ?? 'auto';
    // A location outside the allowed folders fails here, before any reading.
    const { key } = openObject(allowedLocation(uri, deps.fileRoots, this.field), deps.env, { setting: this.field });
    this.source = basename(key);
  }

  [Symbol.asyncIterator](): AsyncGenerator<DatasetRow> {
    return this.read(true);
  }

  /**
   * The rows read again without the duplicate-id check, which keeps every id: for a step whose first complete
   * read checked them, and which compares `sha256` after this read, so a file changed in between (duplicates
   * included) is caught before anything is committed.
   */
  reread(): AsyncIterable<DatasetRow> {
    if (this.sha256 === undefined) throw new Error(`${this.source}: reread() before a complete first read`);
    return { [Symbol.asyncIterator]: () => this.read(false) };
  }

  private async *read(checkIds: boolean): AsyncGenerator<DatasetRow> {
    this.sha256 = undefined;
    this.rows = 0;
    const records = this.records();
    const columns = this.options.columns ?? {};
    let build: ((rec: SourceRecord) => DatasetRow) | undefined;
    let unit: SourceRecord['unit'];
    // Ids go to the row engine, not to a table in the heap, which would hold every id's bytes.
    const ids = checkIds ? await IdCheck.open(this.deps) : undefined;
    try {
      for await (const rec of records) {
        if (build === undefined) {
          const given = this.format === 'auto' ? undefined : (this.format.split('-')[0] as DatasetLayout);
          this.layout = given ?? detectLayout(this.source, rec, columns);
          build = rowBuilder(this.source, this.layout, columns);
          unit = rec.unit;
        }
        const row = build(rec);
        ids?.add(row.id, rec.line);
        this.rows += 1;
        yield row;
      }
      const repeat = await ids?.firstRepeat();
      if (repeat) {
        this.sha256 = undefined;
        duplicateId(this.source, { line: repeat.line, unit }, idFieldOf(columns), repeat.first);
      }
    } finally {
      await ids?.close();
    }
  }

  /** The file's records before any layout is applied (a benchmark file's prompts are read from these). */
  records(): AsyncGenerator<SourceRecord> {
    const kind = fileKindOf(this.source, this.format);
    return kind === 'parquet' ? this.parquetRecords() : this.streamRecords(kind);
  }

  /** Opens the file (see openUserFile: a missing one is bad input naming the field). */
  private async open<T>(read: (store: ObjectStore, key: string) => Promise<T>): Promise<T> {
    return (await openUserFile(this.deps, this.uri, this.field, read)).opened;
  }

  /** JSON, JSONL or CSV: bytes unpacked, checked as UTF-8 and hashed on the way. */
  private async *streamRecords(kind: DatasetFileKind | undefined): AsyncGenerator<SourceRecord> {
    const hash = createHash('sha256');
    const input = await this.open((store, key) => store.getStream(key));
    const text = utf8Chunks(unpackedBytes(input, this.source), this.source, hash);
    const maxRowBytes = this.options.maxRowBytes ?? MAX_ROW_BYTES;
    if (kind === 'csv') yield* csvRecords(text, this.source, maxRowBytes);
    else {
      for await (const rec of jsonRecords(text, this.source, maxRowBytes)) {
        if (kind === 'json' && rec.index === -1) {
          throw new InvalidDataError(
            `${this.source}: datasetFormat is "${this.format}" but the file is not a JSON array`,
            { file: this.source, field: 'input.datasetFormat' },
          );
        }
        yield rec;
      }
    }
    this.sha256 = hash.digest('hex');
  }

  /**
   * Parquet needs random access: a local file is read in place, a remote one is fetched to the engine's scratch folder.
   * Rows come in file order, a chunk at a time; INT64 ids come back as bigint, kept so that the id reads as its digits.
   * DuckDB's complaints name the file by its path, which is replaced by its name.
   */
  private async *parquetRecords(): AsyncGenerator<SourceRecord> {
    const { rows, scratch, close } = await openRows(this.deps);
    const source = this.source;
    try {
      let path = localPathOf(this.uri, this.field);
      if (path === undefined) {
        const local = (path = join(scratch, 'dataset.parquet'));
        await this.open((store, key) => store.getFile(key, local));
      } else {
        await this.open(async (store, key) => {
          if (!(await store.exists(key))) throw new NotFoundError(this.uri);
        });
      }
      const problem = (err: unknown) =>
        String((err as Error).message ?? err)
          .split(path)
          .join(source)
          .slice(0, 160);
      const result = await rows
        .stream(`SELECT * FROM read_parquet(${literal(path)}, file_row_number = true)`)
        .catch((err: unknown) => {
          throw new InvalidDataError(`${source}: not a readable Parquet file (${problem(err)})`, { file: source });
        });
      const chunks = result.yieldRowObjectJs()[Symbol.asyncIterator]();
      let read = 0;
      for (;;) {
        const next = await chunks.next().catch((err: unknown) => {
          throw new InvalidDataError(`${source} row ${read + 1}: the rows from here cannot be read (${problem(err)})`, {
            file: source,
            line: read + 1,
          });
        });
        if (next.done) break;
        for (const { file_row_number: at, ...value } of next.value) {
          read += 1;
          yield { value, line: Number(at) + 1, index: Number(at), unit: 'row' };
        }
      }
      if (read === 0) throw new InvalidDataError(`${source}: dataset is empty`, { file: source });
      this.sha256 = await sha256File(path);
    } finally {
      await close();
    }
  }
}

/** CSV with a header line; records are named by the line they end on. A cell holding a list of turns is JSON text. */
async function* csvRecords(text: AsyncIterable<string>, source: string, maxRowBytes: number) {
  const parser = csvParse({
    columns: true,
    bom: true,
    info: true,
    skip_empty_lines: true,
    max_record_size: maxRowBytes,
  });
  // An error of either side ends the reading of `parser`; destroying it (a reader that stops early) ends the pipe.
  pipeline(text, parser, () => {});
  let index = 0;
  try {
    for await (const item of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
      yield { value: item.record, line: item.info.lines, index: index++ };
    }
  } catch (err) {
    if (err instanceof CsvError) {
      // csv-parse quotes the offending text in its message: only its code and line are kept.
      const line = (err as CsvError & { lines?: number }).lines;
      const where = line === undefined ? source : `${source} line ${line}`;
      const field = err.code === 'CSV_MAX_RECORD_SIZE' ? 'maxRowBytes' : undefined;
      throw new InvalidDataError(`${where}: invalid CSV (${err.code})`, { file: source, line, field });
    }
    throw err;
  } finally {
    parser.destroy();
  }
  if (index === 0) throw new InvalidDataError(`${source}: dataset is empty`, { file: source });
}
