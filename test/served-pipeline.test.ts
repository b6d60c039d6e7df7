import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'mocha';
import type { StepManifest } from '../activities/artifacts/manifest';
import { generateKeys, scoreKeys } from '../activities/artifacts/run-keys';
import type { GenerateResult } from '../activities/types';
import { startRun } from '../client';
import type { PipelineInput } from '../common/settings/schema';
import { balancedDemo, demoRows, startHarness, type Harness } from './helpers/pipeline-harness';
import { stubTrainerEnv } from './helpers/stub-trainer';

const toJsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const MODELS = ['one-off', 'stage-1', 'stage-2'];
const RUN_ID = 'served-run';

/**
 * `evaluation.serving` in a whole run on Temporal and S3: the GPU worker (a child process) starts `pift.serve` on each
 * trained model it downloads, and the answers equal those of the same run answered by `pift.generate`. The run is
 * trained once: its served answers are kept aside, the steps from generation on are removed from the store, and the
 * run is started again without `evaluation.serving`, so `pift.generate` answers with the very models served before.
 * The stub trainer trains, serves and answers (test/helpers/stub-trainer): what is checked is the path the prompts and
 * answers travel; served-generation.test.ts compares the real pift.serve with the real pift.generate.
 */
describe('a run that generates through a serving endpoint (evaluation.serving)', function () {
  this.timeout(10 * 60_000);
  let h: Harness;
  let pgidLog: string;
  const results: Record<string, Awaited<ReturnType<typeof run>>> = {};
  /** Each model's generate step as it was served, before the run answered again with pift.generate. */
  const servedSteps: Record<string, Awaited<ReturnType<typeof generated>>> = {};
  const run = async (input: PipelineInput) =>
    (await startRun(h.temporal.client, input, { taskQueue: h.cpuQueue })).handle.result();

  before(async () => {
    h = await startHarness({ workerEnv: stubTrainerEnv() });
    // Each server's process group id, so the test can see every one of them gone.
    pgidLog = join(await mkdtemp(join(tmpdir(), 'pift-served-run-')), 'pgids');
    h.workerEnv.PIFT_SERVE_COMMAND =
      `echo $$ >> '${pgidLog}'; ` + '{python} -m pift.serve --model {model} --port {port} --served-model-name {name}';
    await h.startGpuWorker();
    const dataset = await h.upload('served/train.jsonl', toJsonl(balancedDemo(2)));
    const heldout = await h.upload('served/heldout.jsonl', toJsonl(demoRows('heldout').slice(0, 4)));
    const input = (runId: string, serving?: object): PipelineInput => ({
      dataset,
      runId,
      store: h.storeUri,
      gpuTaskQueue: h.gpuQueue,
      scorer: { kind: 'offline' },
      stages: { count: 2, thresholds: [3] },
      training: { epochs: 1, batchSize: 8, saveSteps: 50, heartbeatTimeout: '30 seconds' },
      evaluation: {
        benchmarks: [{ name: 'heldout', uri: heldout }],
        judge: 'offline',
        maxNewTokens: 8,
        ...(serving && { serving }),
      },
    });
    results.served = await run(input(RUN_ID, { concurrency: 2 }));
    for (const model of MODELS) servedSteps[model] = await generated(model);
    // What the operator does to recompute a step (the refusal of changed inputs says so): delete it, and what was
    // built on it. Scoring, segmenting and training are reused as they are.
    for (const step of ['generate', 'evaluate', 'report']) await h.store.deletePrefix(`${RUN_ID}/${step}`);
    results.local = await run(input(RUN_ID));
  });

  const generated = async (model: string) => {
    const manifest = JSON.parse(
      await h.store.getText(generateKeys(RUN_ID, model).manifest),
    ) as StepManifest<GenerateResult>;
    const answers = await h.store.getText(`${RUN_ID}/generate/${model}/heldout.jsonl`);
    return { result: manifest.result, answers };
  };

  it('records which path generated each model’s answers', async () => {
    for (const model of MODELS) {
      const served = servedSteps[model];
      assert.equal(served.result.generatedBy, 'served', model);
      assert.equal(served.result.server, 'pift', model);
      assert.equal((await generated(model)).result.generatedBy, 'pift.generate', model);
    }
  });

  it('answered again with the models it served, training nothing twice', () => {
    assert.deepEqual(
      results.local.training.map((t) => [t.name, t.reused]),
      results.served.training.map((t) => [t.name, true]),
    );
    assert.ok(results.served.training.every((t) => !t.reused));
  });

  it('answers as pift.generate answers, model by model', async () => {
    for (const model of MODELS) {
      const byId = (text: string) =>
        text
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line) as { id: string })
          .sort((a, b) => a.id.localeCompare(b.id));
      assert.deepEqual(byId(servedSteps[model].answers), byId((await generated(model)).answers), model);
    }
    assert.deepEqual(results.served.evaluation?.winRates, results.local.evaluation?.winRates);
    assert.deepEqual(results.served.evaluation?.accuracy, results.local.evaluation?.accuracy);
  });

  it('fails on a GPU worker without PIFT_SERVE_COMMAND at the model check, before anything is scored', async () => {
    const bare = await startHarness({ workerEnv: stubTrainerEnv() });
    delete bare.workerEnv.PIFT_SERVE_COMMAND;
    await bare.startGpuWorker();
    const dataset = await bare.upload('served/bare.jsonl', toJsonl(balancedDemo(2)));
    const start = await startRun(
      bare.temporal.client,
      {
        dataset,
        runId: 'served-no-command',
        store: bare.storeUri,
        gpuTaskQueue: bare.gpuQueue,
        scorer: { kind: 'offline' },
        evaluation: { judge: 'offline', serving: {} },
      },
      { taskQueue: bare.cpuQueue },
    );
    const failure = await start.handle.result().then(
      () => assert.fail('the run should fail'),
      (err: unknown) => err,
    );
    const messages: string[] = [];
    for (let e = failure as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
      messages.push(String(e.message));
    }
    assert.match(messages.join(' | '), /evaluation\.serving is set but the GPU worker has no PIFT_SERVE_COMMAND/);
    assert.equal(await bare.store.exists(scoreKeys('served-no-command').manifest), false);
  });

  it('leaves no server behind', async () => {
    const pgids = (await readFile(pgidLog, 'utf8')).trim().split('\n').map(Number);
    assert.equal(pgids.length, MODELS.length);
    for (const pgid of pgids) {
      assert.throws(() => process.kill(-pgid, 0), /ESRCH/);
    }
  });
});
