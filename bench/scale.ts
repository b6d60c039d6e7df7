/**
 * Memory and history of scoring and segmentation at scale, in real CPU worker processes:
 *   npm run bench:scale -- [--rows 100000,1000000] [--scorer openai|offline|file] [--concurrency 32] [--one-worker]
 *                          [--shard-rows N]
 *
 * For each size, a dataset of tiny generated rows is scored and then segmented by worker processes (compiled
 * JavaScript, the real CPU activities and worker options, the bench workflow of scale-workflow.ts bundled beforehand)
 * against a Temporal dev server: a fresh worker per step, so each step's peak is its own, or with --one-worker both
 * steps in one process, as a long-lived worker runs them. With `--shard-rows`, scoring is planned, scored in shards
 * of N rows (all of them by the one worker, as many at a time as its PIFT_SCORE_SHARD_SLOTS) and merged, as
 * scorer.shardRows runs it. `--scorer openai` (the default) scores through the `openai` client against the tests'
 * loopback fake OpenAI server answering at once, so every row goes through the request pool, the answer cache and the
 * client as with a real endpoint; `offline` uses the offline scorer (no HTTP); `file` takes every row's score from a
 * JSONL score file written beside the dataset (`scorer.kind: "file"`), half of them matched by id and half by user
 * text in the released `{"id", "score", "data"}` format.
 * Prints, per size N (100k, 1m, or the row count):
 *   row_memory        the row engine's memory_limit in the workers (PIFT_ROW_MEMORY, default 100MB)
 *   row_allocator     DuckDB's allocator setting in the workers (DUCKDB_JE_MALLOC_CONF, see activities/rows/allocator.ts)
 *   node_flags        the Node options the workers start with: those of `npm run worker:cpu` (package.json)
 *   rss_mb_N          peak RSS of the worker (VmHWM, start included): the larger of the two steps' workers, or the
 *                     one worker's with --one-worker
 *   rss_mb_score_N, rss_mb_segment_N   each step's peak: its worker's VmHWM, or with --one-worker the highest RSS
 *                     sampled every 100 ms during the step
 *   history_events_N  events in the history of the bench workflows (scoring plus segmentation)
 *   seconds_N         wall time of scoring plus segmentation; seconds_score_N and seconds_segment_N apart
 *   cpu_s_score_N, cpu_s_segment_N   CPU seconds (user plus system) the worker spent in each step: steadier than
 *                     wall time on a busy machine
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { ScoreInput, ScoreResult, SegmentInput, SegmentResult } from '../activities/types';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import { startFakeOpenAI, type FakeOpenAI } from '../test/helpers/fake-openai';
import { findTemporalBinary } from '../test/helpers/temporal';
import { cpuWorkerNodeFlags } from '../test/helpers/cpu-worker-flags';
import { PIFT_STEP } from '../common/constants';
import { rowMemory } from '../activities/rows/engine';

const root = resolve(__dirname, '..');
const TASK_QUEUE = 'pift-bench-scale';

/** Rows of three kinds that the offline scorer puts in the three default stages, each a few dozen bytes. */
function writeDataset(path: string, rows: number): Promise<void> {
  const out = createWriteStream(path);
  const kinds = [
    (i: number) => ({ instruction: 'Copy the word.', input: `w${i % 97}`, output: `w${i % 97}` }),
    (i: number) => ({ instruction: 'Sort the numbers.', input: `${i % 7} ${i % 5} ${i % 3}`, output: 'sorted' }),
    (i: number) => ({
      instruction: 'Format the words as a JSON list, then explain why.',
      input: `a${i % 11} b${i % 13} c`,
      output: `["a", "b", "c"] because ${i}`,
    }),
  ];
  return new Promise((done, fail) => {
    out.on('error', fail);
    let i = 0;
    const write = () => {
      let ok = true;
      while (i < rows && ok) {
        ok = out.write(JSON.stringify({ id: `b${i}`, ...kinds[i % 3](i) }) + '\n');
        i++;
      }
      if (i < rows) out.once('drain', write);
      else out.end(done);
    };
    write();
  });
}

/** A score for each row of `writeDataset`: even rows by id, odd rows by user text, as the released files give them. */
function writeScoreFile(path: string, rows: number): Promise<void> {
  const out = createWriteStream(path);
  const user = (i: number) => {
    const kind = i % 3;
    if (kind === 0) return `Copy the word.\nw${i % 97}`;
    if (kind === 1) return `Sort the numbers.\n${i % 7} ${i % 5} ${i % 3}`;
    return `Format the words as a JSON list, then explain why.\na${i % 11} b${i % 13} c`;
  };
  // Equal user texts recur (the generated rows repeat), so text-matched rows take the first score of their text.
  const line = (i: number) =>
    JSON.stringify(
      i % 2
        ? { id: i, score: String(1 + (i % 3) * 1.5), data: [user(i), 'r'] }
        : { id: `b${i}`, score: 1 + (i % 3) * 2 },
    );
  return new Promise((done, fail) => {
    out.on('error', fail);
    let i = 0;
    const write = () => {
      let ok = true;
      while (i < rows && ok) ok = out.write(line(i++) + '\n');
      if (i < rows) out.once('drain', write);
      else out.end(done);
    };
    write();
  });
}

/** Current and peak RSS of a process, from /proc (Linux), in MB. */
function rssOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** CPU seconds (user plus system) a process has used, from /proc (Linux; 100 clock ticks a second). */
function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function startWorker(env: TestWorkflowEnvironment, bundle: string, workerEnv: NodeJS.ProcessEnv) {
  const child = spawn(
    process.execPath,
    [
      ...cpuWorkerNodeFlags(),
      join(root, '.pift', 'bench-build', 'bench', 'scale-worker.js'),
      env.address,
      'default',
      TASK_QUEUE,
      bundle,
    ],
    { env: workerEnv, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  // Read to the end, so the worker never blocks on a full pipe.
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((ready, fail) => {
    lines.on('line', (line) => line === 'ready' && ready());
    child.once('exit', (code) => fail(new Error(`the bench worker exited with code ${code} before it was ready`)));
  });
  return child;
}

async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

const label = (rows: number) =>
  rows % 1_000_000 === 0 ? `${rows / 1_000_000}m` : rows % 1000 === 0 ? `${rows / 1000}k` : `${rows}`;

async function main() {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '100000,1000000' },
      scorer: { type: 'string', default: 'openai' },
      concurrency: { type: 'string', default: '32' },
      'one-worker': { type: 'boolean', default: false },
      'shard-rows': { type: 'string' },
    },
  });
  const sizes = values.rows!.split(',').map((s) => Number(s.trim()));
  const scorer = values.scorer as 'offline' | 'openai' | 'file';
  const oneWorker = values['one-worker']!;
  const shardRows = values['shard-rows'] === undefined ? undefined : Number(values['shard-rows']);
  if (shardRows !== undefined && !(Number.isInteger(shardRows) && shardRows > 0))
    throw new Error('--shard-rows takes a positive integer');
  if (!sizes.every((n) => Number.isInteger(n) && n > 0))
    throw new Error('--rows takes positive integers, e.g. 100000,1000000');
  if (!['offline', 'openai', 'file'].includes(scorer)) throw new Error('--scorer is offline, openai or file');

  // The worker runs compiled JavaScript, as `npm run worker:cpu` does: a TypeScript compiler in it would add ~100 MB.
  console.error('compiling the bench worker ...');
  execFileSync(
    process.execPath,
    [
      require.resolve('typescript/bin/tsc'),
      '-p',
      join(root, 'bench', 'tsconfig.json'),
      '--outDir',
      join(root, '.pift', 'bench-build'),
    ],
    { stdio: 'inherit' },
  );
  const bundlePath = join(root, '.pift', 'bench-build', 'workflow-bundle.js');
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('./scale-workflow') });
  writeFileSync(bundlePath, code);

  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: findTemporalBinary() },
      searchAttributes: [PIFT_STEP],
      log: { format: 'pretty', level: 'error' },
    },
  });
  let fake: FakeOpenAI | undefined;
  let forget: NodeJS.Timeout | undefined;
  if (scorer === 'openai') {
    fake = await startFakeOpenAI();
    fake.handle((req) => {
      const text = JSON.stringify(req.messages);
      return { content: text.includes('explain why') ? '4' : text.includes('Sort') ? '2.5' : '1' };
    });
    // The fake server records every request for tests; a million of them would fill the bench's own memory.
    forget = setInterval(() => fake!.requests.splice(0), 1000);
  }
  const dir = mkdtempSync(join(root, '.pift', 'bench-scale-'));
  const scorerName = { openai: 'fake-openai-loopback-zero-latency', offline: 'offline-heuristic', file: 'score-file' };
  console.log(`scorer=${scorerName[scorer]}`);
  console.log(`concurrency=${values.concurrency}`);
  console.log(`workers=${oneWorker ? 'one for both steps' : 'a fresh one per step'}`);
  // The row engine's memory_limit in the workers (PIFT_ROW_MEMORY passes through when set).
  console.log(`row_memory=${rowMemory(process.env)}`);
  console.log(`row_allocator=${process.env.DUCKDB_JE_MALLOC_CONF}`);
  console.log(`node_flags=${cpuWorkerNodeFlags().join(' ')}`);
  if (shardRows) {
    console.log(`shard_rows=${shardRows}`);
    console.log(`score_shard_slots=${process.env.PIFT_SCORE_SHARD_SLOTS || 'default'}`);
  }
  try {
    for (const rows of sizes) {
      const name = label(rows);
      const data = join(dir, name);
      mkdirSync(data, { recursive: true });
      const dataset = join(data, 'train.jsonl');
      await writeDataset(dataset, rows);
      const scoreFile = join(data, 'scores.jsonl');
      if (scorer === 'file') await writeScoreFile(scoreFile, rows);
      const workerEnv: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        PIFT_FILE_ROOTS: data,
        PIFT_WORKDIR: join(data, 'work'),
        ...(fake ? { PIFT_OPENAI_BASE_URL: fake.baseURL, OPENAI_API_KEY: fake.apiKey } : {}),
        // Shards a worker scores at once (its default when unset), as a CPU worker's environment sets it.
        ...(process.env.PIFT_SCORE_SHARD_SLOTS ? { PIFT_SCORE_SHARD_SLOTS: process.env.PIFT_SCORE_SHARD_SLOTS } : {}),
        ...(process.env.PIFT_ROW_MEMORY ? { PIFT_ROW_MEMORY: process.env.PIFT_ROW_MEMORY } : {}),
        // DuckDB's allocator setting: the engine's default (set in this process by its import), or the one given.
        DUCKDB_JE_MALLOC_CONF: process.env.DUCKDB_JE_MALLOC_CONF,
      };
      const cfg = resolvePipelineInput(
        {
          dataset,
          store: join(data, 'store'),
          runId: `scale-${name}`,
          scorer:
            scorer === 'file'
              ? { kind: scorer, files: [scoreFile] }
              : { kind: scorer, concurrency: Number(values.concurrency) },
          stages: { allowEmpty: true },
        },
        'bench',
        workerEnv,
      );
      const scoreInput: ScoreInput = {
        runId: cfg.runId,
        store: cfg.store,
        dataset: cfg.dataset,
        datasetFormat: cfg.datasetFormat,
        scorer: cfg.scorer,
        maxRowBytes: cfg.maxRowBytes,
      };
      let worker = await startWorker(env, bundlePath, workerEnv);
      try {
        const run = async <R>(workflowType: string, args: unknown[]) => {
          const started = Date.now();
          const cpuBefore = cpuSecondsOf(worker.pid!);
          let sampled = 0;
          const sample = setInterval(() => {
            try {
              sampled = Math.max(sampled, rssOf(worker.pid!).rss);
            } catch {
              /* the worker has exited */
            }
          }, 100);
          try {
            const workflowId = `${cfg.runId}-${workflowType}`;
            const result = await env.client.workflow.execute<(...a: unknown[]) => Promise<R>>(workflowType, {
              taskQueue: TASK_QUEUE,
              workflowId,
              args,
            });
            const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
            return {
              result,
              seconds: (Date.now() - started) / 1000,
              cpu: cpuSecondsOf(worker.pid!) - cpuBefore,
              // A fresh worker per step: its whole-life peak is this step's; one worker for both: what was sampled.
              peak: oneWorker ? sampled : rssOf(worker.pid!).peak,
              events: history.events?.length ?? 0,
            };
          } finally {
            clearInterval(sample);
          }
        };
        const score = shardRows
          ? await run<ScoreResult>('benchScoreSharded', [scoreInput, shardRows])
          : await run<ScoreResult>('benchScore', [scoreInput]);
        if (!oneWorker) {
          await stopWorker(worker);
          worker = await startWorker(env, bundlePath, workerEnv);
        }
        const segmentInput: SegmentInput = {
          runId: cfg.runId,
          store: cfg.store,
          score: score.result,
          stages: cfg.stages,
          heldoutFraction: cfg.evaluation.heldoutFraction,
          heldoutMax: cfg.evaluation.heldoutMax,
        };
        const seg = await run<SegmentResult>('benchSegment', [segmentInput]);
        const peak = oneWorker ? rssOf(worker.pid!).peak : Math.max(score.peak, seg.peak);
        const stages = seg.result.stages.map((s) => s.rows).join('/');
        console.log(`rows_${name}=${rows} scored_${name}=${score.result.scored} stages_${name}=${stages}`);
        console.log(`rss_mb_${name}=${Math.round(peak)}`);
        console.log(`rss_mb_score_${name}=${Math.round(score.peak)}`);
        console.log(`rss_mb_segment_${name}=${Math.round(seg.peak)}`);
        console.log(`history_events_${name}=${score.events + seg.events}`);
        console.log(`seconds_${name}=${(score.seconds + seg.seconds).toFixed(1)}`);
        console.log(`seconds_score_${name}=${score.seconds.toFixed(1)}`);
        console.log(`seconds_segment_${name}=${seg.seconds.toFixed(1)}`);
        console.log(`cpu_s_score_${name}=${score.cpu.toFixed(1)}`);
        console.log(`cpu_s_segment_${name}=${seg.cpu.toFixed(1)}`);
      } finally {
        await stopWorker(worker);
        rmSync(data, { recursive: true, force: true });
      }
    }
  } finally {
    if (forget) clearInterval(forget);
    await fake?.stop();
    await env.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
