// One table of bad inputs, each given to `validate` (the command line's own function) and to a started run: both must
// refuse it with the same message, and the run before any paid request. The table is the contract of checkInput.
import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { checkInput } from '../activities/validate/check-input';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import { innermostMessage } from '../client/run-progress';
import { startRun } from '../client/start-run';
import { validateInput } from '../client/validate-input';
import { failureTypeOf, InvalidDataError } from '../common/failures';
import type { PipelineInput } from '../common/settings/schema';
import { createCpuWorkers } from '../workers/create-workers';
import { badInputs, CANARY, type BadInput } from './helpers/bad-input-cases';
import { startFakeOpenAI, type FakeOpenAI } from './helpers/fake-openai';
import { sharedTemporal } from './helpers/temporal';
import { workflowBundle } from './helpers/workflow-bundle';
import type { TestWorkflowEnvironment } from '@temporalio/testing';

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'pift-bad-inputs-')));

/** What a refusal says: its message, for comparison across `validate` and the run. */
interface Verdict {
  refused: boolean;
  type?: string;
  message: string;
}

describe('bad inputs: validate and a run refuse each one alike, before any paid request', function () {
  this.timeout(10 * 60_000);
  let temporal: TestWorkflowEnvironment;
  let llm: FakeOpenAI;
  let workers: Worker[] = [];
  let running: Promise<unknown>;
  let env: NodeJS.ProcessEnv;
  let train: string;
  let bench: string;
  let cases: BadInput[];
  const taskQueue = `bad-inputs-${randomUUID()}`;
  const store = pathToFileURL(join(dir, 'store')).href;

  before(async () => {
    ({ train, bench, cases } = badInputs(dir));
    [temporal, llm] = await Promise.all([sharedTemporal(), startFakeOpenAI({ apiKey: `sk-test-${randomUUID()}` })]);
    env = {
      PIFT_FILE_ROOTS: dir,
      PIFT_WORKDIR: join(dir, 'work'),
      PIFT_OPENAI_BASE_URL: llm.baseURL,
      OPENAI_API_KEY: llm.apiKey,
      // A case that slipped through to the model check fails in seconds, with a message that differs.
      PIFT_GPU_CHECK_WAIT: '2 seconds',
    };
    workers = await createCpuWorkers({
      connection: temporal.nativeConnection,
      namespace: temporal.namespace ?? 'default',
      taskQueue,
      deps: { ...depsFromEnv(env), env },
      workflowBundle: await workflowBundle(),
    });
    running = Promise.all(workers.map((w) => w.run()));
  });

  after(async () => {
    for (const w of workers) w.shutdown();
    await running;
    await llm.stop();
  });

  /** The input every case changes one thing of: valid, free to check (offline scorer and judge). */
  const base = (): PipelineInput => ({
    dataset: train,
    store,
    scorer: { kind: 'openai' },
    training: { epochs: 1 },
    evaluation: { judge: 'offline', benchmarks: [{ name: 'b', uri: bench }] },
  });

  async function viaValidate(input: PipelineInput): Promise<Verdict> {
    try {
      await validateInput(input, input.runId!, { env, mode: 'full' });
      return { refused: false, message: 'input is valid' };
    } catch (err) {
      const typed = err instanceof InvalidDataError;
      return { refused: true, type: typed ? 'BadInput' : (err as Error).name, message: (err as Error).message };
    }
  }

  async function viaRun(input: PipelineInput): Promise<Verdict> {
    try {
      const run = await startRun(temporal.client, input, { taskQueue });
      await run.handle.result();
      return { refused: false, message: 'completed' };
    } catch (err) {
      // Refused before the start (a secret must not reach history), or failed by the run's own checks.
      if (err instanceof InvalidDataError) return { refused: true, type: 'BadInput', message: err.message };
      if (!(err instanceof WorkflowFailedError)) throw err;
      return { refused: true, type: failureTypeOf(err), message: innermostMessage(err) };
    }
  }

  it('the base input passes the shared check', async () => {
    const input = { ...base(), runId: `ok-${randomUUID()}` };
    const cfg = resolvePipelineInput(input, input.runId, env);
    const { checks } = await checkInput(depsFromEnv(env), cfg, { localModelDirs: true, probeStore: true });
    assert.ok(
      checks.some((c) => c.checked === '20 rows read, each one valid (alpaca layout)'),
      JSON.stringify(checks),
    );
  });

  it('a good input passes both: validate lists its checks, and an export-only run of it completes', async () => {
    const input: PipelineInput = {
      ...base(),
      runId: `good-${randomUUID()}`,
      scorer: { kind: 'offline' },
      training: { mode: 'export-only' },
    };
    const v = await validateInput(input, input.runId!, { env, mode: 'full' });
    assert.ok(
      v.checks.some((c) => /1 prompts read, each one valid/.test(c.checked)),
      JSON.stringify(v.checks),
    );
    assert.deepEqual(await viaRun(input), { refused: false, message: 'completed' });
  });

  it(`has at least 40 cases, each refused by both with the same message`, async () => {
    const table = cases;
    assert.ok(table.length >= 40, `${table.length} cases`);
    const paid = () => llm.requests.filter((r) => r.method === 'POST').length;
    const mismatches: string[] = [];
    for (const c of table) {
      const input = { ...c.input(base()), runId: `bad-${randomUUID()}` };
      const [v, r] = [await viaValidate(input), await viaRun(input)];
      const line = `${c.what}: validate ${v.type ?? ''} "${v.message.slice(0, 300)}" / run ${r.type ?? ''} "${r.message.slice(0, 300)}"`;
      if (!v.refused || !r.refused || v.message !== r.message || v.type !== r.type || !c.names.test(v.message))
        mismatches.push(line);
      for (const text of [v.message, r.message]) assert.ok(!text.includes(CANARY), `${c.what} echoes a value: ${text}`);
    }
    assert.deepEqual(mismatches, []);
    assert.equal(paid(), 0, 'a paid request was made');
  });
});
