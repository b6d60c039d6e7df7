/**
 * DuckDB's allocator (its own jemalloc) keeps freed pages for a second before it gives them back to the system, so a
 * worker's RSS held what one query had freed beside what the next one took: at 1,000,000 rows segmentation peaked at
 * 444-465 MB with a 100MB memory limit, and 369 MB with pages given back at once (bench:scale). jemalloc reads this
 * variable once, when DuckDB's library loads, so the engine imports this module before `@duckdb/node-api`; a value
 * already in the environment is kept.
 */
export const ROW_ALLOCATOR_DEFAULT = 'dirty_decay_ms:0,muzzy_decay_ms:0';

process.env.DUCKDB_JE_MALLOC_CONF ??= ROW_ALLOCATOR_DEFAULT;
