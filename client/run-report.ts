import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import { buildRunReport } from '../activities/report/write-report';
import { openStore } from '../store';
import type { PipelineResult } from '../workflows';

export interface LocalReport {
  markdownPath: string;
  htmlPath: string;
  /** The results tables, as results.md has them. */
  table: string;
  store: string;
  ms: number;
}

/**
 * Writes report.md and report.html of a finished run into a local folder, from the run's artifacts in its store; works
 * for runs finished before the report step existed too.
 */
export async function writeLocalReport(
  storeUri: string,
  runId: string,
  outDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<LocalReport> {
  const started = Date.now();
  const { markdown, html, table } = await buildRunReport(openStore(storeUri, env), runId);
  const dir = resolve(outDir);
  await mkdir(dir, { recursive: true });
  const markdownPath = join(dir, 'report.md');
  const htmlPath = join(dir, 'report.html');
  await writeFile(markdownPath, markdown);
  await writeFile(htmlPath, html);
  return { markdownPath, htmlPath, table, store: storeUri, ms: Date.now() - started };
}

/** The store a completed run wrote to, as its result names it; undefined when the run is not completed. */
export async function storeOfRun(client: Client, runId: string): Promise<string | undefined> {
  const handle = client.workflow.getHandle(runId);
  const { status } = await handle.describe();
  if (status.name !== 'COMPLETED') return undefined;
  return ((await handle.result()) as PipelineResult).store;
}
