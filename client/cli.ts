/**
 * The phased-ift command line: `npm run pift -- run --dataset data/demo/train.jsonl`.
 * Commands: run, validate, resume <runId>, status <runId>, cancel <runId>. Temporal is found through TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE and TEMPORAL_UI_URL (defaults: localhost:7233, default, http://localhost:8233).
 */
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { Command } from 'commander';
import { InvalidDataError, WorkerMisconfiguredError } from '../common/failures';
import type { PipelineInput } from '../common/input';
import { temporalConfigFromEnv } from '../workers/config';
import { describeProgress, followProgress } from './progress-display';
import { buildInput, type InputOptions } from './input-file';
import { newRunId, resumeRun, runProgress, startRun, uiLink, type StartedRun } from './start-run';
import { validateInput } from './validate-input';

const cfg = temporalConfigFromEnv();

async function withClient<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address: cfg.address });
  try {
    return await fn(new Client({ connection, namespace: cfg.namespace }));
  } finally {
    await connection.close();
  }
}

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
  .description('check the input, then start a run and follow it')
  .option('--dataset <uri>', 'Alpaca JSONL/JSON: s3://..., file://... or a local path')
  .option('--input <file>', 'the whole workflow input as a JSON file (fields as in README "Workflow input")')
  .option('--run-id <id>', 'run id (default: generated)')
  .option('--store <uri>', 'artifact store: s3://bucket/prefix or a directory')
  .option('--no-check', 'check only the schema, run id and URIs here; the workers check the rest')
  .option('--no-wait', 'print the run id and the Web UI link, do not follow')
  .action(async (opts: InputOptions & { check: boolean; wait: boolean }) => {
    const built = buildInput(opts);
    const runId = built.runId ?? newRunId();
    const input: PipelineInput = { ...built, runId };
    // Nothing starts until the input passes: a typo must not leave a failed run behind.
    const validation = await validateInput(input, runId, { env: process.env, mode: 'before-start', io: opts.check });
    for (const note of validation.skipped) console.log(`not checked here: ${note}`);
    await withClient(async (client) =>
      waitAndReport(await startRun(client, input, { taskQueue: cfg.cpuTaskQueue, uiUrl: cfg.uiUrl }), opts.wait),
    );
  });

program
  .command('validate')
  .description('check an input as a run would before its first paid request, without starting anything')
  .option('--input <file>', 'the whole workflow input as a JSON file')
  .option('--dataset <uri>', 'Alpaca JSONL/JSON: s3://..., file://... or a local path')
  .option('--run-id <id>', "run id (default: the file's, else a placeholder)")
  .option('--store <uri>', 'artifact store: s3://bucket/prefix or a directory')
  .action(async (opts: InputOptions) => {
    const input = buildInput(opts);
    const runId = input.runId ?? 'pift-validate';
    const { checks, skipped } = await validateInput(input, runId, { env: process.env, mode: 'full' });
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

/** Exit status of an input that cannot run as given (`validate`, `run`): the message names what to fix. */
const EXIT_INVALID = 2;

program.parseAsync().catch((err) => {
  if (err instanceof InvalidDataError || err instanceof WorkerMisconfiguredError) {
    console.error(`invalid: ${err.message}`);
    process.exit(EXIT_INVALID);
  }
  console.error(failureText(err));
  process.exit(1);
});
