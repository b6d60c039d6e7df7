/**
 * hyparquet is ESM-only; Node loads it with require() (from 20.19 and 22.12 on), and this small typed surface keeps
 * TypeScript (whose moduleResolution here does not read package exports) off its declaration files.
 */
export interface AsyncBuffer {
  byteLength: number;
  slice(start: number, end?: number): Promise<ArrayBuffer>;
}

export interface ParquetMetadata {
  num_rows: bigint | number;
  row_groups: Array<{ num_rows: bigint | number }>;
}

interface Hyparquet {
  asyncBufferFromFile(path: string): Promise<AsyncBuffer>;
  parquetMetadataAsync(file: AsyncBuffer): Promise<ParquetMetadata>;
  parquetReadObjects(options: {
    file: AsyncBuffer;
    metadata?: ParquetMetadata;
    rowStart?: number;
    rowEnd?: number;
  }): Promise<Array<Record<string, unknown>>>;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const hyparquet = (): Hyparquet => require('hyparquet') as Hyparquet;
