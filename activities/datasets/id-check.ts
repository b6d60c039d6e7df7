import { openRows, type OpenRows } from '../rows/engine';
import type { DuckDBAppender } from '@duckdb/node-api';

/**
 * The duplicate-id check of a dataset read as a stream: each row's id and line go to the row engine (within its
 * memory limit, spilling to disk), and one query after the last row finds the first repeat in file order.
 */
export class IdCheck {
  private constructor(
    private readonly engine: OpenRows,
    private readonly appender: DuckDBAppender,
  ) {}

  static async open(deps: { env: NodeJS.ProcessEnv; workDir: string }): Promise<IdCheck> {
    const engine = await openRows(deps);
    await engine.rows.run('CREATE TABLE ids (id VARCHAR, line INTEGER)');
    return new IdCheck(engine, await engine.rows.createAppender('ids'));
  }

  add(id: string, line: number): void {
    this.appender.appendVarchar(id);
    this.appender.appendInteger(line);
    this.appender.endRow();
  }

  /** The first row (in file order) whose id an earlier row used, with that earlier row's line. */
  async firstRepeat(): Promise<{ line: number; first: number } | undefined> {
    this.appender.flushSync();
    // Only repeated ids go through the window, which holds its whole input at once: a dataset of unique ids costs
    // one aggregate, not a sort of every row. A row's rowid is its place in the file (rows are appended in order).
    const found = await this.engine.rows.runAndReadAll(`
      SELECT line, first FROM (
        SELECT line, rowid AS n, min(line) OVER (PARTITION BY id) AS first,
          row_number() OVER (PARTITION BY id ORDER BY rowid) AS k
        FROM ids WHERE id IN (SELECT id FROM ids GROUP BY id HAVING count(*) > 1))
      WHERE k = 2 ORDER BY n LIMIT 1`);
    const [repeat] = found.getRows();
    return repeat && { line: Number(repeat[0]), first: Number(repeat[1]) };
  }

  async close(): Promise<void> {
    // Closing the appender flushes it, which fails on a full disk: the database is closed (and its file let go) anyway.
    try {
      this.appender.closeSync();
    } finally {
      await this.engine.close();
    }
  }
}
