/**
 * Scoring and judging throughput against the loopback fake OpenAI server with a fixed latency, through the real
 * activities (pool, rate gate, store), as a fraction of the ceiling min(rate limit, concurrency / latency):
 *   npm run bench:scoring -- [--latency-ms 200] [--seconds 5] [--rpm 1200] [--no-cache] [--only 128]
 * (`--only` runs one concurrency and nothing else, to compare two builds of the step side by side.)
 * `rate_limited_fraction` runs at concurrency 32 against a requests-per-minute limit the server enforces with 429 +
 * Retry-After, with no budget set in the input: the step learns the limit from the x-ratelimit headers (its ceiling
 * lets the server's initial one-second burst through). The server runs in a process of its own, as a real endpoint
 * would; on a busy machine every figure is still bounded by CPU: the bare openai client's figures, printed last,
 * show what the machine allows at all.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import pLimit from 'p-limit';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { depsFromEnv } from '../activities/deps';
import { evaluate } from '../activities/evaluate/evaluate';
import { scoreDifficulty } from '../activities/score/score-difficulty';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import { startRemoteFakeOpenAI } from './fake-openai-process';

async function main() {
  const { values } = parseArgs({
    options: {
      'latency-ms': { type: 'string', default: '200' },
      seconds: { type: 'string', default: '5' },
      rpm: { type: 'string', default: '1200' },
      'no-cache': { type: 'boolean', default: false },
      only: { type: 'string' },
    },
  });
  const latencyMs = Number(values['latency-ms']);
  const seconds = Number(values.seconds);
  const rpm = Number(values.rpm);
  const llm = await startRemoteFakeOpenAI('sk-bench', { latencyMs });
  const dir = mkdtempSync(join(tmpdir(), 'bench-scoring-'));
  const env: NodeJS.ProcessEnv = {
    PIFT_OPENAI_BASE_URL: llm.baseURL,
    OPENAI_API_KEY: 'sk-bench',
    PIFT_FILE_ROOTS: dir,
    PIFT_WORKDIR: join(dir, 'work'),
  };
  const deps = { ...depsFromEnv(env), env };
  const mock = () => new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  let runs = 0;

  /** Items per second of one scoring step over `rows` rows. */
  // This process's CPU per item, the step's and the bare client's: steadier than throughput on a shared machine.
  const cpuPerItem = { step: 0, bare: 0 };
  const cpuMs = (since: NodeJS.CpuUsage) => {
    const { user, system } = process.cpuUsage(since);
    return (user + system) / 1000;
  };
  const score = async (rows: number, options: Record<string, unknown>) => {
    const scorer = { cache: !values['no-cache'], ...options };
    const dataset = join(dir, `rows-${++runs}.jsonl`);
    writeFileSync(
      dataset,
      Array.from(
        { length: rows },
        (_, i) => `${JSON.stringify({ instruction: `Task ${runs}.${i}`, output: 'x' })}\n`,
      ).join(''),
    );
    const cfg = resolvePipelineInput({ dataset, store: join(dir, 'store'), runId: `score-${runs}`, scorer }, 'wf', env);
    const started = performance.now();
    const cpu = process.cpuUsage();
    await mock().run(() =>
      scoreDifficulty(deps, {
        runId: cfg.runId,
        store: cfg.store,
        dataset: cfg.dataset,
        datasetFormat: cfg.datasetFormat,
        scorer: cfg.scorer,
      }),
    );
    cpuPerItem.step = cpuMs(cpu) / rows;
    return rows / ((performance.now() - started) / 1000);
  };

  const ceiling = (concurrency: number, limitPerSecond = Infinity) =>
    Math.min(limitPerSecond, concurrency / (latencyMs / 1000));
  /** The bare client at the same concurrency, no step around it: what this machine allows at all. */
  const client = new OpenAI({ baseURL: llm.baseURL, apiKey: 'sk-bench' });
  const bare = async (requests: number, concurrency: number) => {
    const limit = pLimit(concurrency);
    const started = performance.now();
    const cpu = process.cpuUsage();
    await Promise.all(
      Array.from({ length: requests }, (_, i) =>
        limit(() => client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: `Bare ${i}` }] })),
      ),
    );
    cpuPerItem.bare = cpuMs(cpu) / requests;
    return requests / ((performance.now() - started) / 1000);
  };
  const figures: Record<string, number> = {};
  const baseline: Record<string, number> = {};
  // A first, unmeasured step and batch of requests, each the size of the largest concurrency's measured run: module
  // loading and the JIT's optimising (after thousands of calls) are no part of the steady rate. With 64 rows the step,
  // measured first, paid for optimising the client's code, which the bare client, measured after it, then ran on.
  const concurrencies = values.only ? [Number(values.only)] : [8, 32, 128];
  const warmUp = Math.max(...concurrencies);
  await score(Math.round(ceiling(warmUp) * seconds), { concurrency: warmUp });
  await bare(Math.round(ceiling(warmUp) * seconds), warmUp);
  for (const c of concurrencies) {
    const rows = Math.round(ceiling(c) * seconds);
    figures[`ceiling_fraction_c${c}`] = (await score(rows, { concurrency: c })) / ceiling(c);
    baseline[`bare_client_fraction_c${c}`] = (await bare(rows, c)) / ceiling(c);
    if (values.only) {
      figures[`cpu_ms_per_row_c${c}`] = cpuPerItem.step;
      baseline[`bare_client_cpu_ms_per_request_c${c}`] = cpuPerItem.bare;
    }
  }
  if (!values.only) await rateLimitedAndJudging();

  async function rateLimitedAndJudging() {
    // The server's bucket starts full (one second's worth): the ceiling lets that burst through at once, then the rate.
    await llm.behave({ latencyMs, rateLimit: { requestsPerMinute: rpm } });
    const perSecond = rpm / 60;
    const rateLimitedRows = Math.round(perSecond * Math.max(seconds, 8));
    const limitedCeiling =
      rateLimitedRows /
      (Math.max(0, rateLimitedRows - perSecond) / Math.min(perSecond, ceiling(32)) + latencyMs / 1000);
    figures.rate_limited_fraction = (await score(rateLimitedRows, { concurrency: 32 })) / limitedCeiling;
    const rejected = await llm.rateLimited();
    await llm.behave({ latencyMs });

    // Judging: one candidate against the baseline on one benchmark; items are requests (two orders per prompt).
    const prompts = Math.round((ceiling(32) * seconds) / 2);
    const file = (name: string, rows: unknown[]) => {
      const path = join(dir, name);
      writeFileSync(path, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
      return path;
    };
    const ids = Array.from({ length: prompts }, (_, i) => `p${i}`);
    const bench = file(
      'bench.jsonl',
      ids.map((id, i) => ({ id, instruction: `Question ${i}`, input: '' })),
    );
    const answers = (model: string) => ({
      bench: file(
        `${model}.jsonl`,
        ids.map((id) => ({ id, answer: `${model} answer` })),
      ),
    });
    const started = performance.now();
    await mock().run(() =>
      evaluate(deps, {
        runId: 'judge',
        store: join(dir, 'store'),
        benchmarks: [{ name: 'bench', uri: bench, prompts, withReferences: 0 }],
        baseline: { name: 'one-off', answers: answers('one-off'), reused: false },
        candidates: [{ name: 'stage-1', answers: answers('stage-1'), reused: false }],
        judge: 'openai',
        concurrency: 32,
      }),
    );
    figures.judge_ceiling_fraction_c32 = (2 * prompts) / ((performance.now() - started) / 1000) / ceiling(32);
    console.log(`# latency ${latencyMs} ms, rate limit ${rpm}/min (${rejected} requests answered 429)`);
  }

  console.log(`# latency ${latencyMs} ms`);
  for (const [name, value] of Object.entries(figures)) console.log(`${name}=${value.toFixed(3)}`);
  console.log('# the bare openai client with p-limit on this machine, for comparison:');
  for (const [name, value] of Object.entries(baseline)) console.log(`${name}=${value.toFixed(3)}`);
  await llm.stop();
  rmSync(dir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
