import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { PIFT_STEP } from '../common/constants';
import { repoRoot } from './helpers/temporal';
import { join } from 'node:path';
import { after, before, describe, it } from 'mocha';
import type { PipelineInput } from '../common/settings/schema';
import { resumeRun, runProgress, startRun } from '../client';
import { defaultPayloadConverter } from '@temporalio/common';
import { progressQuery } from '../workflows';
import { replayAndRecord } from './helpers/histories';
import { balancedDemo, demoRows, startHarness, type Harness } from './helpers/pipeline-harness';
import { stubTrainerEnv } from './helpers/stub-trainer';
import { buildRunReport } from '../activities/report/write-report';

const execFileP = promisify(execFile);
const LEVEL_SCORE: Record<string, string> = { easy: '1', medium: '2.5', hard: '4.25' };

/** Innermost failure message of a failed workflow (ActivityFailure → ApplicationFailure). */
function rootMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown };
  while (e.cause) e = e.cause as { message?: string; cause?: unknown };
  return e.message ?? String(err);
}

/** Paid LLM calls so far (a preflight probe of the endpoint is a GET, and free). */
let chatCalls = (): number => 0;

const toJsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

/** 96 training rows, 8 of each of the 12 demo families, and 12 held-out prompts with references. */
function smallDemo() {
  return { train: balancedDemo(8), heldout: demoRows('heldout').slice(0, 12) };
}

describe('phased-ift pipeline on Temporal, S3 and the Python trainer', function () {
  this.timeout(15 * 60_000);
  let h: Harness;
  let datasetUri: string;
  let heldoutUri: string;
  const levelOf = new Map<string, string>();
  /** The held-out prompts whose judge reply never parses: those sharing the first one's instruction and input. */
  let neverParses: (user: string) => boolean = () => false;
  let unparseablePrompts = 0;

  before(async () => {
    h = await startHarness();
    chatCalls = () => h.llm.requests.filter((r) => r.path.endsWith('/chat/completions')).length;
    await h.startGpuWorker();
    const { train, heldout } = smallDemo();
    for (const r of [...train, ...heldout]) levelOf.set(`${r.instruction}\n${r.input}`, r.level);
    const odd = heldout.find((r) => r.input) ?? heldout[0];
    neverParses = (user) => user.includes(odd.instruction) && user.includes(odd.input);
    unparseablePrompts = heldout.filter((r) => neverParses(`${r.instruction}\n${r.input}`)).length;
    datasetUri = await h.upload('small/train.jsonl', toJsonl(train));
    heldoutUri = await h.upload('small/heldout.jsonl', toJsonl(heldout));
  });

  const baseInput = (runId: string, extra: Partial<PipelineInput> = {}): PipelineInput => ({
    dataset: datasetUri,
    runId,
    store: h.storeUri,
    gpuTaskQueue: h.gpuQueue,
    training: { epochs: 3, saveSteps: 4, heartbeatTimeout: '15 seconds' },
    // No answer cache: stages that give the same answer would share a judgment, and the counts below are exact.
    evaluation: { benchmarks: [{ name: 'heldout', uri: heldoutUri }], maxNewTokens: 24, cache: false },
    ...extra,
  });

  describe('a whole run', () => {
    const runId = 'e2e-run';
    let result: Awaited<ReturnType<typeof execute>>;
    const execute = async (input: PipelineInput) => {
      const run = await startRun(h.temporal.client, input, { taskQueue: h.cpuQueue });
      return run.handle.result();
    };
    let firstRequests = 0;

    before(async () => {
      let call = 0;
      h.llm.handle((req) => {
        call += 1;
        const system = String(req.messages.find((m) => m.role === 'system')?.content ?? '');
        const user = String(req.messages.find((m) => m.role === 'user')?.content ?? '');
        if (system.includes('checking the quality of the answer')) {
          // A judge that prefers longer answers, and one prompt whose reply never parses.
          if (neverParses(user)) return { content: 'Both answers are fine.' };
          const answers = [...user.matchAll(/Answer\]\n([\s\S]*?)\n\n\[The End/g)].map((m) => m[1]);
          return {
            content: `${Math.min(10, 1 + (answers[0].length % 9))} ${Math.min(10, 1 + (answers[1].length % 9))}`,
          };
        }
        // Transient faults the client must ride out, and one unparseable answer it must re-ask.
        if (call === 1) return { status: 429, retryAfterSeconds: 0 };
        if (call === 2) return { status: 503 };
        if (call === 3) return { content: 'It is quite hard, maybe a four?' };
        const key = [...levelOf.keys()].find((k) => user.includes(k.split('\n')[0]) && user.includes(k.split('\n')[1]));
        return { content: LEVEL_SCORE[levelOf.get(key ?? '') ?? 'medium'] };
      });
      result = await execute(baseInput(runId));
      firstRequests = chatCalls();
    });

    it('scores with the OpenAI-compatible endpoint and splits 3 stages by the paper thresholds', async () => {
      assert.equal(result.scorer, 'gpt-4-0613');
      assert.deepEqual(
        result.stages.map((s) => s.rows),
        [32, 32, 32],
      );
      assert.deepEqual(
        result.stages.map((s) => [s.minScore, s.maxScore]),
        [
          [1, 1],
          [2.5, 2.5],
          [4.25, 4.25],
        ],
      );
      for (const k of [1, 2, 3]) {
        const text = await h.store.getText(`${runId}/segment/stage-${k}.jsonl`);
        assert.equal(text.trim().split('\n').length, 32);
      }
      const scores = (await h.store.getText(`${runId}/score/scores.jsonl`))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.equal(scores.length, 96);
      // Who scored, and with which prompt, is said once in the step's result, not on every row.
      assert.ok(scores.every((s) => typeof s.score === 'number' && Object.keys(s).join() === 'id,score'));
      const manifest = JSON.parse(await h.store.getText(`${runId}/score/manifest.json`));
      assert.equal(manifest.result.scorer, 'gpt-4-0613');
      assert.match(manifest.result.promptSha256, /^[0-9a-f]{64}$/);
    });

    it('trains every stage from the previous one, with checkpoints in S3 and a falling loss', async () => {
      assert.deepEqual(
        result.training.map((t) => t.name),
        ['stage-1', 'stage-2', 'stage-3', 'one-off'],
      );
      const stageSteps = result.training.slice(0, 3).map((t) => t.steps);
      assert.deepEqual(stageSteps, [12, 12, 12]);
      assert.equal(result.training[3].steps, 36, 'the One-off baseline takes as many optimizer steps as all stages');
      for (const t of result.training) {
        assert.ok(t.lossLast < t.lossFirst, `${t.name}: loss ${t.lossFirst} → ${t.lossLast} did not fall`);
        const keys = await h.store.list(`${runId}/train/${t.name}/`);
        assert.ok(
          keys.some((k) => /checkpoints\/step-\d+\/manifest\.json$/.test(k)),
          `${t.name} has no committed checkpoint`,
        );
        assert.ok(
          keys.some((k) => k.endsWith('/final/model.safetensors')),
          `${t.name} has no final weights`,
        );
      }
      const stage2Config = JSON.parse(await h.store.getText(`${runId}/train/stage-2/manifest.json`));
      assert.equal(stage2Config.result.name, 'stage-2');
    });

    it('judges both orders and reports win rates by the paper rule', async () => {
      const ev = result.evaluation!;
      assert.ok(ev.markdown.includes('| stage-1 |') && ev.markdown.includes('| stage-3 |'), ev.markdown);
      const md = await h.store.getText(`${runId}/evaluate/results.md`);
      assert.equal(md, ev.markdown);
      const results = JSON.parse(await h.store.getText(`${runId}/evaluate/results.json`));
      for (const row of results.comparisons) {
        const c = row.totals;
        assert.equal(c.win + c.tie + c.loss + c.failed, 12);
        assert.ok(c.failed >= 1, 'the unparseable judge reply is counted as a failure');
        const expected = (100 * (c.win + c.tie / 2)) / c.n - 50;
        assert.ok(Math.abs(row.average - expected) < 1e-9);
      }
      // Every judged prompt was asked in both orders, and the replies that never parse twice more in each.
      assert.ok(unparseablePrompts >= 1);
      const judgeCalls = h.llm.requests.filter((r) => r.rawBody.includes('checking the quality'));
      assert.equal(judgeCalls.length, 3 * 12 * 2 + 3 * unparseablePrompts * 2 * 2);
      for (const row of results.comparisons)
        assert.deepEqual(row.benchmarks[0].judgeReplies, {
          reasked: unparseablePrompts,
          stillFailed: unparseablePrompts,
        });
    });

    it('writes the report beside the results, and the statistics beside every win rate', async () => {
      assert.deepEqual(result.report, {
        markdownUri: h.store.uriFor(`${runId}/report/report.md`),
        htmlUri: h.store.uriFor(`${runId}/report/report.html`),
      });
      assert.match(await h.store.getText(`${runId}/report/report.html`), /Chart\.js v4/);
      assert.match(await h.store.getText(`${runId}/report/report.md`), /## Win rate per stage[\s\S]*## Training loss/);
      const results = JSON.parse(await h.store.getText(`${runId}/evaluate/results.json`));
      assert.deepEqual(
        results.statistics.comparisons.map((c: { model: string }) => c.model),
        ['stage-1', 'stage-2', 'stage-3'],
      );
      assert.deepEqual(result.evaluation!.table, result.evaluation!.markdown.trimEnd().split('\n'));
      const started = Date.now();
      await buildRunReport(h.store, runId);
      console.log(`      report of the run from S3: ${Date.now() - started} ms`);
    });

    it('reports progress through the query, the search attribute and the CLI', async () => {
      const handle = h.temporal.client.workflow.getHandle(runId);
      const progress = await handle.query(progressQuery);
      assert.equal(progress.step, 'done');
      assert.deepEqual(progress.finished.slice(0, 2), ['score', 'segment']);
      // The Web UI names each activity by its stage, and the run's current details end with the results table.
      const summaries = (await handle.fetchHistory()).events!.flatMap((e) =>
        e.activityTaskScheduledEventAttributes && e.userMetadata?.summary
          ? [defaultPayloadConverter.fromPayload<string>(e.userMetadata.summary)]
          : [],
      );
      for (const name of ['score', 'segment', 'stage-1', 'stage-2', 'stage-3', 'one-off', 'evaluate', 'report'])
        assert.ok(summaries.includes(name), `no activity summarised as ${name}: ${summaries.join(', ')}`);
      const metadata = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      assert.match(metadata.currentDetails ?? '', /\*\*Step:\*\* done/);
      assert.ok(metadata.currentDetails?.includes(result.evaluation!.markdown), metadata.currentDetails);
      const description = await handle.describe();
      assert.equal(description.typedSearchAttributes.get(PIFT_STEP), 'done');
      const { stdout } = await execFileP(
        process.execPath,
        ['-r', 'ts-node/register', join(repoRoot, 'client', 'cli.ts'), 'status', runId],
        {
          cwd: repoRoot,
          env: { ...h.workerEnv, TEMPORAL_UI_URL: 'http://ui.example:8233' },
        },
      );
      assert.match(stdout, /run e2e-run: COMPLETED/);
      assert.match(stdout, /http:\/\/ui\.example:8233\/namespaces\/default\/workflows\/e2e-run/);
      assert.match(stdout, /done: score, segment/);
    });

    it('replays its own history with the current workflow code', async () => {
      await replayAndRecord(h.temporal.client, runId, 'e2e-run');
    });

    it('re-running the finished run recomputes nothing', async () => {
      await assert.rejects(resumeRun(h.temporal.client, runId), /already completed/);
      // resume reads the input back from the run's history, as it would for a run started in the Web UI.
      const rerun = await resumeRun(h.temporal.client, runId, { force: true });
      const again = await rerun.handle.result();
      assert.equal(chatCalls(), firstRequests, 'no new paid LLM call (the preflight reachability probe is a free GET)');
      assert.ok(
        again.training.every((t) => t.reused),
        'no training ran again',
      );
      assert.deepEqual(again.evaluation?.winRates, result.evaluation?.winRates);
      await replayAndRecord(h.temporal.client, rerun.handle.workflowId, 'resumed-rerun');
    });
  });

  describe('bad input fails at once with the problem named', () => {
    const cases: Array<[string, () => Promise<Partial<PipelineInput>>, RegExp]> = [
      [
        'a malformed JSONL line',
        async () => ({
          dataset: await h.upload('bad/malformed.jsonl', '{"instruction":"a","output":"b"}\n{"instruction": oops}\n'),
        }),
        /malformed\.jsonl line 2/,
      ],
      [
        'a missing field',
        async () => ({
          dataset: await h.upload('bad/missing.jsonl', '{"instruction":"a","output":"b"}\n{"instruction":"c"}\n'),
        }),
        /missing\.jsonl line 2.*"output"/,
      ],
      ['an empty dataset', async () => ({ dataset: await h.upload('bad/empty.jsonl', '\n') }), /empty\.jsonl.*empty/],
      ['an invalid setting', async () => ({ training: { epochs: 0 } }), /input\.training\.epochs/],
      [
        'an unknown setting',
        async () => ({ training: { epoch: 3 } as never }),
        /input\.training\.epoch\b.*not a known setting/,
      ],
      ['a run id escaping its prefix', async () => ({ runId: '../escape' }), /runId/],
      [
        "a local file outside the worker's allowed folders",
        async () => ({ dataset: 'file:///proc/self/environ' }),
        /^input\.dataset: file:\/\/\/proc\/self\/environ is outside .*PIFT_FILE_ROOTS/,
      ],
      [
        'a row over maxRowBytes',
        async () => ({
          dataset: await h.upload('bad/big.jsonl', `{"instruction":"a","output":"${'x'.repeat(500)}"}\n`),
          maxRowBytes: 256,
        }),
        /big\.jsonl line 1: .*maxRowBytes/,
      ],
    ];
    for (const [name, input, expected] of cases) {
      it(name, async () => {
        const extra = await input();
        const workflowId = `bad-${Math.random().toString(36).slice(2)}`;
        const err = await h.temporal.client.workflow
          .execute('phasedIftPipeline', {
            taskQueue: h.cpuQueue,
            workflowId,
            args: [{ ...baseInput(`bad-${Math.random().toString(36).slice(2)}`), ...extra }],
          })
          .then(
            () => undefined,
            (e) => e,
          );
        assert.ok(err instanceof WorkflowFailedError, `expected a failed run, got ${err}`);
        assert.match(rootMessage(err), expected);
        // Not retried: the history records each activity's last attempt, and none went past the first.
        const attempts = (await h.temporal.client.workflow.getHandle(workflowId).fetchHistory()).events!.flatMap(
          (e) => e.activityTaskStartedEventAttributes?.attempt ?? [],
        );
        assert.deepEqual(
          attempts.filter((a) => a !== 1),
          [],
          'bad input must not be retried',
        );
        // A run that failed in a step (past validation and the preflight checks) is kept for replay.
        if (name === 'a missing field') await replayAndRecord(h.temporal.client, workflowId, 'failed-bad-input');
      });
    }
  });

  after(() => h?.llm.handle(() => ({ content: '3' })));

  describe('cancellation', () => {
    it('kills the trainer process group', async () => {
      // What is under test is how the activity stops its trainer, not what the trainer learns: the stub trainer
      // trains here, a step every half second, on a CPU and a GPU worker of their own.
      const stub = await startHarness({ workerEnv: { ...stubTrainerEnv(), PIFT_STUB_STEP_SECONDS: '0.5' } });
      await stub.startGpuWorker();
      const run = await startRun(
        stub.temporal.client,
        baseInput('cancel-run', {
          store: stub.storeUri,
          gpuTaskQueue: stub.gpuQueue,
          scorer: { kind: 'offline' },
          baseline: { mode: 'skip' },
          training: { epochs: 500, saveSteps: 1000 },
        }),
        { taskQueue: stub.cpuQueue },
      );
      // The trainer's pid, step and total travel in the activity's heartbeat details, read through describe().
      let pid: number | undefined;
      for (let i = 0; i < 600 && !pid; i++) {
        pid = (await runProgress(stub.temporal.client, run.runId)).training['stage-1']?.pid;
        if (!pid) await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(pid, 'the trainer started');
      const progress = await runProgress(stub.temporal.client, run.runId);
      assert.equal(progress.step, 'stage-1');
      const activity = progress.activities.find((a) => a.name === 'stage-1');
      assert.equal(activity?.type, 'trainStage');
      assert.equal(activity?.taskQueue, stub.gpuQueue);
      assert.ok((progress.training['stage-1']?.totalSteps ?? 0) > 0);
      assert.doesNotThrow(() => process.kill(-pid!, 0), 'the trainer group is alive before the cancel');
      await run.handle.cancel();
      const err = await run.handle.result().then(
        () => undefined,
        (e) => e,
      );
      assert.ok(err instanceof WorkflowFailedError);
      assert.throws(() => process.kill(-pid!, 0), /ESRCH/, 'no process of the trainer group is left');
      await replayAndRecord(h.temporal.client, run.handle.workflowId, 'cancelled-run');
    });
  });
});
