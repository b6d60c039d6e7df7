/**
 * The row engine: an embedded DuckDB for the steps that read, join, sort and split millions of rows. Its memory is
 * bounded by a setting (PIFT_ROW_MEMORY, DuckDB's `memory_limit`, default 100MB); what does not fit spills to a scratch
 * folder under the worker's PIFT_WORKDIR, removed when the work is done.
 */
// First: it configures DuckDB's allocator, which reads its setting when the library loads.
import './allocator';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';

/** DuckDB's `memory_limit` when PIFT_ROW_MEMORY is not set. */
export const ROW_MEMORY_DEFAULT = '100MB';

export const rowMemory = (env: NodeJS.ProcessEnv): string => env.PIFT_ROW_MEMORY || ROW_MEMORY_DEFAULT;

export type Rows = DuckDBConnection;
export type SqlValues = Record<string, DuckDBValue>;

/** A connection to a fresh database in a scratch folder, and the clean-up that closes it and removes its scratch folder. */
export interface OpenRows {
  rows: Rows;
  /** The scratch folder, also for a step's own local files (named unlike DuckDB's `rows.duckdb*` and temp files). */
  scratch: string;
  close(): Promise<void>;
}

/**
 * Opens a fresh database in a scratch folder under the work folder: its tables, and what a query spills, live on
 * disk beyond the memory limit. One thread: a sequence then numbers rows in file order, which the steps' outputs depend
 * on, and a step's memory does not grow with the host's cores. The allocator's background thread hands freed memory
 * back to the system over time: without it what a query freed stayed in the process (segmentation's queries at 1M rows
 * replayed alone peaked 290-340 MB with it, 350-380 MB without).
 */
export async function openRows(deps: { env: NodeJS.ProcessEnv; workDir: string }): Promise<OpenRows> {
  await mkdir(deps.workDir, { recursive: true });
  const scratch = await mkdtemp(join(deps.workDir, 'rows-'));
  const instance = await DuckDBInstance.create(join(scratch, 'rows.duckdb'), {
    memory_limit: rowMemory(deps.env),
    temp_directory: scratch,
    threads: '1',
    preserve_insertion_order: 'true',
    allocator_background_threads: 'true',
  });
  // Whatever fails on the way (a full disk among them), the database file is closed and the scratch folder removed.
  const closeInstance = async () => {
    try {
      instance.closeSync();
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  };
  let rows: Rows;
  try {
    rows = await instance.connect();
    // The database is removed with its scratch folder once closed: writing its tables into the file first is wasted.
    await rows.run('PRAGMA disable_checkpoint_on_shutdown');
  } catch (err) {
    await closeInstance();
    throw err;
  }
  return {
    rows,
    scratch,
    close: async () => {
      try {
        rows.closeSync();
      } finally {
        await closeInstance();
      }
    },
  };
}

/** Runs `use` with a connection to a fresh database and its scratch folder (see openRows). */
export async function withRows<T>(
  deps: { env: NodeJS.ProcessEnv; workDir: string },
  use: (rows: Rows, scratch: string) => Promise<T>,
): Promise<T> {
  const { rows, scratch, close } = await openRows(deps);
  try {
    return await use(rows, scratch);
  } finally {
    await close();
  }
}

/** The number a query of one value gives (a count). */
export async function numberOf(rows: Rows, sql: string, values?: SqlValues): Promise<number> {
  const result = await rows.runAndReadAll(sql, values);
  return Number(result.getRows()[0][0]);
}

/** A string as an SQL literal. */
export const literal = (text: string): string => `'${text.replace(/'/g, "''")}'`;

/**
 * The non-blank lines of a local text file as (pos, line), pos ascending in file order (from the sequence `name`, made
 * here; a window over the whole file would hold it in memory): a CSV read with one column and
 * no quoting, which splits on line breaks only (the files read so are our own JSONL, where JSON.stringify escapes every
 * control character). `maxLine` bounds a line's bytes; see `withLongerLines`.
 */
export async function linesOf(rows: Rows, path: string, maxLine: number, name = 'lines'): Promise<string> {
  await rows.run(`CREATE OR REPLACE SEQUENCE ${name}`);
  return (
    `(SELECT * FROM (SELECT line, nextval('${name}') AS pos FROM read_csv(${literal(path)}, ` +
    `columns = {'line': 'VARCHAR'}, header = false, auto_detect = false, delim = chr(1), quote = '', escape = '', ` +
    `new_line = '\\n', compression = 'none', parallel = false, max_line_size = ${maxLine}, ` +
    `buffer_size = ${maxLine + 1})) WHERE trim(line) <> '')`
  );
}

const FIRST_LINE_LIMIT = 4 << 20;

/**
 * Runs `read(maxLine)` with a line limit of 4 MB, and again with 8 times more while DuckDB says a line is longer: a
 * read buffer (a line's worth) is taken from the memory limit, so it starts small.
 */
export async function withLongerLines<T>(read: (maxLine: number) => Promise<T>): Promise<T> {
  for (let maxLine = FIRST_LINE_LIMIT; ; maxLine *= 8) {
    try {
      return await read(maxLine);
    } catch (err) {
      if (!/Maximum line size/i.test(String(err)) || maxLine > 2 ** 31) throw err;
    }
  }
}
