/**
 * The phased-ift command line: `npm run pift -- run --dataset data/demo/train.jsonl`.
 * Commands: run, resume <runId>, status <runId>, cancel <runId>. Temporal is found through TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE and TEMPORAL_UI_URL (defaults: localhost:7233, default, http://localhost:8233).
 */
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { PipelineInput } from '../common/input';
import { temporalConfigFromEnv } from '../workers/config';
import { describeProgress, followProgress } from './progress-display';
import { resumeRun, runProgress, startRun, uiLink, type StartedRun } from './start-run';

const cfg = temporalConfigFromEnv();

async function withClient<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address: cfg.address });
  try {
    return await fn(new Client({ connection, namespace: cfg.namespace }));
  } finally {
    await connection.close();
  }
}

/** A local path becomes an absolute file URI, since the workers may run in another directory. */
const asUri = (pathOrUri: string) =>
  /^[a-z][a-z0-9+.-]*:\/\//i.test(pathOrUri) ? pathOrUri : pathToFileURL(resolve(pathOrUri)).href;

async function waitAndReport(run: StartedRun, wait: boolean): Promise<void> {
  console.log(`run ${run.runId} started\nWeb UI: ${run.uiLink}`);
  if (!wait) return;
  try {
    const result = await followProgress(run.handle, run.handle.result());
    console.log(`\nrun ${run.runId} completed; artifacts under ${result.store}/${result.runId}/`);
    if (result.evaluation) console.log(`\n${result.evaluation.markdown}`);
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      console.error(
        `\nrun ${run.runId} failed: ${failureText(err)}\nresume it with: npm run pift -- resume ${run.runId}`,
      );
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}

function failureText(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  let text = e?.message ?? String(err);
  while (e?.cause) {
    e = e.cause as { message?: string; cause?: unknown };
    if (e.message) text = e.message;
  }
  return text;
}

const program = new Command('pift').description('Phased Instruction Fine-Tuning on Temporal');

program
  .command('run')
  .description('start a run and follow it')
  .option('--dataset <uri>', 'Alpaca JSONL/JSON: s3://..., file://... or a local path')
  .option('--input <file>', 'the whole workflow input as a JSON file (fields as in README "Workflow input")')
  .option('--run-id <id>', 'run id (default: generated)')
  .option('--store <uri>', 'artifact store: s3://bucket/prefix or a directory')
  .option('--no-wait', 'print the run id and the Web UI link, do not follow')
  .action(async (opts: { dataset?: string; input?: string; runId?: string; store?: string; wait: boolean }) => {
    const fromFile: Partial<PipelineInput> = opts.input ? JSON.parse(readFileSync(opts.input, 'utf8')) : {};
    const dataset = opts.dataset ?? fromFile.dataset;
    if (!dataset) throw new Error('give --dataset or an --input file with a "dataset" field');
    const benchmarks = fromFile.evaluation?.benchmarks?.map((b) => ({ ...b, uri: asUri(b.uri) }));
    const input: PipelineInput = {
      ...fromFile,
      ...(benchmarks ? { evaluation: { ...fromFile.evaluation, benchmarks } } : {}),
      dataset: asUri(dataset),
      ...(opts.runId ? { runId: opts.runId } : {}),
      ...(opts.store ? { store: asUri(opts.store) } : {}),
    };
    await withClient(async (client) =>
      waitAndReport(await startRun(client, input, { taskQueue: cfg.cpuTaskQueue, uiUrl: cfg.uiUrl }), opts.wait),
    );
  });

program
  .command('resume <runId>')
  .description('restart a failed or cancelled run: finished steps are skipped, training continues from its checkpoint')
  .option('--force', 're-run a completed run (nothing finished is recomputed)')
  .option('--no-wait', 'do not follow')
  .action(async (runId: string, opts: { force?: boolean; wait: boolean }) => {
    await withClient(async (client) =>
      waitAndReport(await resumeRun(client, runId, { uiUrl: cfg.uiUrl, force: opts.force }), opts.wait),
    );
  });

program
  .command('status <runId>')
  .description('show where a run is')
  .action(async (runId: string) => {
    await withClient(async (client) => {
      const description = await client.workflow.getHandle(runId).describe();
      console.log(`run ${runId}: ${description.status.name}\nWeb UI: ${uiLink(cfg.uiUrl, cfg.namespace, runId)}`);
      const progress = await runProgress(client, runId).catch(() => undefined);
      if (progress) console.log(describeProgress(progress) + (progress.error ? `\nerror: ${progress.error}` : ''));
    });
  });

program
  .command('cancel <runId>')
  .description('cancel a run; its trainer is stopped after saving a checkpoint, and `resume` continues it later')
  .action(async (runId: string) => {
    await withClient(async (client) => {
      await client.workflow.getHandle(runId).cancel();
      console.log(`cancellation requested for ${runId}`);
    });
  });

program.parseAsync().catch((err) => {
  console.error(failureText(err));
  process.exit(1);
});
