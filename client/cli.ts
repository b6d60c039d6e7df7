/**
 * The phased-ift command line: `npm run pift -- run --dataset data/demo/train.jsonl`.
 * Commands: run, export, validate, resume <runId>, status <runId>, list, cancel <runId>, report <runId>. Temporal is found as the workers find it
 * (workers/config.ts: a Temporal config profile, TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
 * TEMPORAL_TLS_*), and TEMPORAL_UI_URL (default http://localhost:8233) for the links it prints.
 */
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { Command } from 'commander';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { buildRunReport } from '../activities/report/write-report';
import { InvalidDataError, WorkerMisconfiguredError } from '../common/failures';
import type { PipelineInput } from '../common/settings/schema';
import { openStore } from '../store';
import type { PipelineResult } from '../workflows';
import { temporalConfigFromEnv } from '../workers/config';
import { formatRuns, listRuns } from './list-runs';
import { buildInput, type InputOptions } from './input-file';
import { followProgress } from './progress-display';
import { innermostMessage } from './run-progress';
import { failureHint, formatStatus, idleWorkers, runFailureOf, runStatus, typed, workerLines } from './run-status';
import { newRunId, resumeRun, startRun, uiLink, type StartedRun } from './start-run';
import { validateInput } from './validate-input';

const cfg = temporalConfigFromEnv();

async function withClient<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const connection = await Connection.connect(cfg.connection).catch((err: unknown) => {
    throw new Error(
      `cannot reach the Temporal server at ${cfg.address} (${err instanceof Error ? err.message : String(err)}): ` +
        'start one (npm run demo starts a local one) or set TEMPORAL_ADDRESS, or a Temporal config profile',
    );
  });
  try {
    return await fn(new Client({ connection, namespace: cfg.namespace }));
  } finally {
    await connection.close();
  }
}

async function waitAndReport(client: Client, run: StartedRun, wait: boolean): Promise<void> {
  console.log(`run ${run.runId} started\nWeb UI: ${run.uiLink}`);
  // A run with no worker on a queue it needs waits forever without a word: say so now.
  const idle = await idleWorkers(client, run.runId, cfg.gpuTaskQueue).catch(() => undefined);
  for (const line of idle ? workerLines(idle) : []) console.error(line);
  if (!wait) return;
  try {
    const result = await followProgress(run.handle, run.handle.result());
    console.log(`\nrun ${run.runId} completed; artifacts under ${result.store}/${result.runId}/`);
    if (result.export) console.log(`stages for LLaMA-Factory and axolotl: ${result.export.uri} (see its README.md)`);
    const a = result.scoreAgreement;
    if (a) {
      const rho = a.spearman === null ? 'undefined' : a.spearman.toFixed(3);
      console.log(`scorers ${result.scorer} and ${a.scorer} agree with Spearman's rho ${rho} over ${a.rows} rows`);
    }
    if (result.evaluation) console.log(`\n${result.evaluation.markdown}`);
    if (result.report) console.log(`report: ${result.report.htmlUri}`);
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      const failure = runFailureOf(err);
      console.error(`\nrun ${run.runId} failed: ${typed(failure)}\nnext: ${failureHint(run.runId, failure)}`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}

type StartOptions = InputOptions & { check: boolean; wait: boolean };

async function startAndFollow(opts: StartOptions, adjust: (input: PipelineInput) => PipelineInput = (i) => i) {
  const built = adjust(buildInput(opts));
  const runId = built.runId ?? newRunId();
  const input: PipelineInput = { ...built, runId };
  // Nothing starts until the input passes: a typo must not leave a failed run behind.
  const validation = await validateInput(input, runId, { env: process.env, mode: 'before-start', io: opts.check });
  for (const note of validation.skipped) console.log(`not checked here: ${note}`);
  await withClient(async (client) =>
    waitAndReport(client, await startRun(client, input, { taskQueue: cfg.cpuTaskQueue, uiUrl: cfg.uiUrl }), opts.wait),
  );
}

const program = new Command('pift').description('Phased Instruction Fine-Tuning on Temporal');

/** `run`, `export` and `validate`: the input as a file, or a dataset, and what overrides the file. */
const inputCommand = (name: string, description: string, runIdDefault: string) =>
  program
    .command(name)
    .description(description)
    .option('--dataset <uri>', 'Alpaca or conversations (JSONL, JSON, Parquet, CSV): s3://..., file://... or a path')
    .option('--input <file>', 'the whole workflow input as a JSON file (fields as in docs/settings.md)')
    .option('--run-id <id>', `run id (default: ${runIdDefault})`)
    .option('--store <uri>', 'artifact store: s3://bucket/prefix or a directory');

/** `run` and `export`: then whether to check the input here and whether to follow the run. */
const startCommand = (name: string, description: string) =>
  inputCommand(name, description, 'generated')
    .option('--no-check', 'check only the schema, run id and URIs here; the workers check the rest')
    .option('--no-wait', 'print the run id and the Web UI link, do not follow');

startCommand('run', 'check the input, then start a run and follow it').action((opts: StartOptions) =>
  startAndFollow(opts),
);

startCommand(
  'export',
  'score and segment only, then write the stages for LLaMA-Factory and axolotl (no GPU worker needed)',
).action((opts: StartOptions) =>
  startAndFollow(opts, (input) => ({ ...input, training: { ...input.training, mode: 'export-only' } })),
);

inputCommand(
  'validate',
  'check an input as a run would before its first paid request, without starting anything',
  "the file's, else a placeholder",
).action(async (opts: InputOptions) => {
  const input = buildInput(opts);
  const runId = input.runId ?? 'pift-validate';
  const { checks, skipped } = await validateInput(input, runId, {
    env: process.env,
    mode: 'full',
    progress: (p) => console.error(`checking ${p.file ?? 'the input'}: ${p.rows} rows read`),
  });
  for (const c of checks) console.log(`ok       ${c.field}: ${c.checked}`);
  for (const note of skipped) console.log(`skipped  ${note}`);
  console.log('input is valid');
});

program
  .command('resume <runId>')
  .description('restart a failed or cancelled run: finished steps are skipped, training continues from its checkpoint')
  .option('--force', 're-run a completed run (nothing finished is recomputed)')
  .option('--no-wait', 'do not follow')
  .action(async (runId: string, opts: { force?: boolean; wait: boolean }) => {
    await withClient(async (client) =>
      waitAndReport(client, await resumeRun(client, runId, { uiUrl: cfg.uiUrl, force: opts.force }), opts.wait),
    );
  });

program
  .command('status <runId>')
  .description('show where a run is: its step, running activities with attempts and failures, idle queues')
  .action(async (runId: string) => {
    await withClient(async (client) => {
      const status = await runStatus(client, runId, {
        uiLink: uiLink(cfg.uiUrl, cfg.namespace, runId),
        gpuTaskQueue: cfg.gpuTaskQueue,
      });
      console.log(formatStatus(status));
    });
  });

program
  .command('list')
  .description('recent runs with their status and step')
  .option('--limit <n>', 'how many', '20')
  .action(async (opts: { limit: string }) => {
    await withClient(async (client) => console.log(formatRuns(await listRuns(client, { limit: Number(opts.limit) }))));
  });

program
  .command('cancel <runId>')
  .description('cancel a run; its trainer is stopped after saving a checkpoint, and `resume` continues it later')
  .action(async (runId: string) => {
    await withClient(async (client) => {
      const handle = client.workflow.getHandle(runId);
      const { status } = await handle.describe();
      if (status.name !== 'RUNNING') {
        console.error(`run ${runId} is already ${status.name.toLowerCase()}: nothing to cancel`);
        process.exitCode = 1;
        return;
      }
      await handle.cancel();
      console.log(`cancellation requested for ${runId}: its trainer saves a checkpoint, then the run stops`);
    });
  });

program
  .command('report <runId>')
  .description("write a finished run's report.md and report.html here, from its store, and print its results table")
  .option('--store <uri>', "the run's store (default: the one its result names, else PIFT_STORE, else .pift/store)")
  .option('--out <dir>', 'folder to write to (default: .pift/reports/<runId>)')
  .action(async (runId: string, opts: { store?: string; out?: string }) => {
    const started = Date.now();
    // The store the run itself used, when Temporal knows the run; a run from another cluster needs --store.
    const store =
      opts.store ??
      (await withClient((client) => storeOfRun(client, runId)).catch(() => undefined)) ??
      process.env.PIFT_STORE ??
      '.pift/store';
    // Built from the run's artifacts, so runs finished before the report step existed get one too.
    const { markdown, html, table } = await buildRunReport(openStore(store, process.env), runId);
    const dir = resolve(opts.out ?? `.pift/reports/${runId}`);
    await mkdir(dir, { recursive: true });
    const [md, page] = [join(dir, 'report.md'), join(dir, 'report.html')];
    await Promise.all([writeFile(md, markdown), writeFile(page, html)]);
    console.log(table);
    console.log(`report of ${runId} (from ${store}, ${Date.now() - started} ms):\n  ${page}\n  ${md}`);
  });

/** The store a completed run wrote to, as its result names it; undefined when the run is not completed. */
async function storeOfRun(client: Client, runId: string): Promise<string | undefined> {
  const handle = client.workflow.getHandle(runId);
  if ((await handle.describe()).status.name !== 'COMPLETED') return undefined;
  return ((await handle.result()) as PipelineResult).store;
}

program.parseAsync().catch((err) => {
  // Exit status 2: an input that cannot run as given (`validate`, `run`); the message names what to fix.
  if (err instanceof InvalidDataError || err instanceof WorkerMisconfiguredError) {
    console.error(`invalid: ${err.message}`);
    process.exit(2);
  }
  console.error(innermostMessage(err));
  process.exit(1);
});
