/**
 * Training throughput and the cost of everything around it, on this machine:
 *
 *   npm run bench:training -- [--round-seconds 30] [--rounds 3] [--minutes 10] [--mb 256]
 *
 * 1. `throughput_ratio`: the same configuration (the builtin tiny model, the demo data, the tiny preset's settings)
 *    trained by `python -m pift.train` and by a plain transformers `Trainer` script (bench/plain_trainer.py), in
 *    alternating order, `--rounds` times each; the ratio of the medians of their tokens per second, ours / plain, each
 *    timed by the Trainer's own `train_runtime`. A short calibration run sets the steps of a round so that each
 *    trains about `--round-seconds`: rounds of a few seconds (the old 40 steps, 2.5 s) let start-up jitter move the
 *    ratio by 5% between two runs on the same machine.
 * 2. `overhead_s` and `overhead_fraction`: the whole trainStage activity against SeaweedFS S3 on loopback, with
 *    enough steps for about `--minutes` of training: `overhead_s` = activity wall time - the trainer's train_runtime,
 *    the fixed cost of a stage (downloading data and model, starting Python, uploading checkpoints left over after
 *    training ends, the final model and the log, committing); `overhead_fraction` = overhead_s / train_runtime, or
 *    overhead_s / `--minutes` where the stage trained less (the machine ran faster than during the rounds). The
 *    default is a 10-minute stage: the fixed cost spread over a 1-minute one reads about 10 times higher.
 * 3. `upload_mb_s`, `download_mb_s`: a checkpoint-shaped folder (`--mb` MB in four shards and a few small files) up
 *    with uploadDir and down with downloadVerified (sha256 checked as it streams). MB = 10^6 bytes.
 */
import { Value } from '@sinclair/typebox/value';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { trainKeys } from '../activities/artifacts/run-keys';
import { downloadVerified, uploadDir } from '../activities/artifacts/transfer';
import type { ActivityDeps } from '../activities/deps';
import { trainerConfig } from '../activities/train/trainer-config';
import { trainStage } from '../activities/train/train-stage';
import type { TrainInput } from '../activities/types';
import { resolveTrainingDefaults } from '../common/settings/derive';
import { TrainingSchema, type TrainingOptions } from '../common/settings/schema';
import { openStore } from '../store';
import { startS3Server } from '../test/helpers/s3-server';

const repoRoot = path.resolve(__dirname, '..');
const python = process.env.PIFT_PYTHON ?? path.join(repoRoot, '.venv', 'bin', 'python');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x: number, digits = 3) => x.toFixed(digits);

function runPython(args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, { cwd, env: { ...process.env, HF_HUB_OFFLINE: '1' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args[0]} exited ${code}:\n${err}`))));
  });
}

/** The train_runtime of one JSON line carrying it (pift.train's "done" event, plain_trainer.py's result). */
function runtimeOf(stdout: string): { runtime: number; tokens?: number } {
  for (const line of stdout.trim().split('\n').reverse()) {
    try {
      const e = JSON.parse(line) as { train_runtime?: number; tokens?: number };
      if (typeof e.train_runtime === 'number') return { runtime: e.train_runtime, tokens: e.tokens };
    } catch {
      /* not a JSON line */
    }
  }
  throw new Error('no train_runtime in the output');
}

const training = (over: Partial<TrainingOptions> = {}) =>
  resolveTrainingDefaults(Value.Default(TrainingSchema, { ...over }) as TrainingOptions);

type Trainer = 'ours' | 'plain';

/** One training run of `steps` steps by either trainer, in a folder of its own: its train_runtime and token count. */
async function trainOnce(scratch: string, dataFile: string, which: Trainer, steps: number, label: string) {
  const dir = path.join(scratch, `${which}-${label}`);
  await fs.mkdir(dir, { recursive: true });
  const config = trainerConfig(training(), steps, {
    train_file: dataFile,
    final_dir: path.join(dir, 'final'),
    output_dir: path.join(dir, 'checkpoints'),
    model_name_or_path: 'builtin:tiny-llama',
    resume_from_checkpoint: null,
    parent_pid: process.pid,
  });
  const configPath = path.join(dir, 'config.json');
  await fs.writeFile(configPath, JSON.stringify(config));
  const args =
    which === 'ours' ? ['-m', 'pift.train', configPath] : [path.join(__dirname, 'plain_trainer.py'), configPath];
  const result = runtimeOf(await runPython(args, dir));
  console.log(`${label} ${which.padEnd(5)} ${steps} steps, train_runtime ${fmt(result.runtime)} s`);
  await fs.rm(dir, { recursive: true, force: true });
  return result;
}

async function throughput(scratch: string, dataFile: string, roundSeconds: number, rounds: number) {
  // Calibration: the seconds per step here, so that every round below trains for about roundSeconds.
  const calibrationSteps = 20;
  const calibration = await trainOnce(scratch, dataFile, 'ours', calibrationSteps, 'calibration');
  const steps = Math.max(calibrationSteps, Math.ceil((roundSeconds * calibrationSteps) / calibration.runtime));
  const expected = (steps * calibration.runtime) / calibrationSteps;
  console.log(`${rounds} rounds per trainer of ${steps} steps, about ${fmt(expected, 0)} s of training each`);
  const runs = { ours: [] as number[], plain: [] as number[] };
  let tokens = 0;
  for (let r = 0; r < rounds; r++) {
    const order: Trainer[] = r % 2 === 0 ? ['plain', 'ours'] : ['ours', 'plain'];
    for (const which of order) {
      const { runtime, tokens: counted } = await trainOnce(scratch, dataFile, which, steps, `round ${r + 1}`);
      if (counted) tokens = counted;
      runs[which].push(runtime);
    }
  }
  const ours = tokens / median(runs.ours);
  const plain = tokens / median(runs.plain);
  console.log(`tokens per round ${tokens}; tokens/s ours ${fmt(ours, 0)}, plain ${fmt(plain, 0)}`);
  return { ratio: ours / plain, steps, roundSeconds: median(runs.ours), secondsPerStep: median(runs.ours) / steps };
}

async function overhead(scratch: string, data: string, s3Env: NodeJS.ProcessEnv, bucket: string, steps: number) {
  const store = openStore(`s3://${bucket}/bench-training-${randomBytes(3).toString('hex')}`, s3Env);
  const dataKey = 'run/segment/stage-1.jsonl';
  await store.put(dataKey, data);
  const deps: ActivityDeps = {
    env: { ...process.env, ...s3Env },
    workDir: path.join(scratch, 'work'),
    python,
    fileRoots: [scratch],
  };
  const input: TrainInput = {
    runId: 'run',
    store: store.root,
    name: 'stage-1',
    dataUri: store.uriFor(dataKey),
    dataSha256: createHash('sha256').update(data).digest('hex'),
    initModel: 'builtin:tiny-llama',
    maxSteps: steps,
    training: training({ saveSteps: Math.max(1, Math.floor(steps / 4)) }),
  };
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('WARN') });
  const started = performance.now();
  await env.run(trainStage, deps, input);
  const wall = (performance.now() - started) / 1000;
  // The trainer prints its end-of-training summary into its log, which the activity keeps in the store.
  const log = await store.getText(trainKeys('run', 'stage-1').log(1));
  // The summary printed when training ends is the last line naming it (a resumed or earlier line may say 0).
  const match = [...log.matchAll(/'train_runtime': '?([\d.]+)/g)].at(-1);
  if (!match) throw new Error('no train_runtime in the trainer log');
  const trained = Number(match[1]);
  console.log(`trainStage: ${steps} steps, wall ${fmt(wall)} s, train_runtime ${fmt(trained)} s`);
  await store.deletePrefix('run');
  return { seconds: wall - trained, trained };
}

async function transfers(scratch: string, s3Env: NodeJS.ProcessEnv, bucket: string, mb: number) {
  const store = openStore(`s3://${bucket}/bench-transfer-${randomBytes(3).toString('hex')}`, s3Env);
  const dir = path.join(scratch, 'checkpoint');
  await fs.mkdir(dir, { recursive: true });
  const shard = Math.floor((mb * 1e6) / 4);
  for (let i = 1; i <= 4; i++)
    await fs.writeFile(path.join(dir, `model-0000${i}-of-00004.safetensors`), randomBytes(shard));
  for (const small of ['config.json', 'trainer_state.json', 'scheduler.pt', 'rng_state.pth'])
    await fs.writeFile(path.join(dir, small), randomBytes(2048));
  const bytes = 4 * shard + 4 * 2048;
  let t = performance.now();
  const entries = await uploadDir(store, dir, 'ckpt');
  const up = bytes / 1e6 / ((performance.now() - t) / 1000);
  t = performance.now();
  await downloadVerified(store, entries, 'ckpt', path.join(scratch, 'checkpoint-down'));
  const down = bytes / 1e6 / ((performance.now() - t) / 1000);
  console.log(`transfer: ${fmt(bytes / 1e6, 1)} MB in 8 files, up ${fmt(up, 1)} MB/s, down ${fmt(down, 1)} MB/s`);
  await store.deletePrefix('ckpt');
  return { up, down };
}

async function main() {
  const { values } = parseArgs({
    options: {
      'round-seconds': { type: 'string', default: '30' },
      rounds: { type: 'string', default: '3' },
      minutes: { type: 'string', default: '10' },
      mb: { type: 'string', default: '256' },
    },
  });
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'pift-bench-training-'));
  const data = await fs.readFile(path.join(repoRoot, 'data', 'demo', 'train.jsonl'), 'utf8');
  const dataFile = path.join(scratch, 'train.jsonl');
  await fs.writeFile(dataFile, data);
  console.log(
    `${os.cpus().length} cores, load ${os
      .loadavg()
      .map((l) => fmt(l, 1))
      .join(' ')}`,
  );
  const s3 = await startS3Server();
  try {
    const tp = await throughput(scratch, dataFile, Number(values['round-seconds']), Number(values.rounds));
    const steps = Math.max(4, Math.round((Number(values.minutes) * 60) / tp.secondsPerStep));
    const oh = await overhead(scratch, data, s3.env, s3.bucket, steps);
    const tr = await transfers(scratch, s3.env, s3.bucket, Number(values.mb));
    console.log(`rounds=${values.rounds} round_steps=${tp.steps} round_seconds=${fmt(tp.roundSeconds, 1)}`);
    console.log(`throughput_ratio=${fmt(tp.ratio)}`);
    console.log(`trained_minutes=${fmt(oh.trained / 60, 2)}`);
    console.log(`overhead_s=${fmt(oh.seconds, 1)}`);
    // The fixed cost over a stage of at least --minutes: a machine that sped up after the rounds trains fewer minutes
    // than asked, and the fraction of that shorter stage would overstate it.
    const stageSeconds = Math.max(oh.trained, Number(values.minutes) * 60);
    if (oh.trained < Number(values.minutes) * 60)
      console.log(`(the stage trained ${fmt(oh.trained / 60, 2)} min; overhead_fraction is for ${values.minutes} min)`);
    console.log(`overhead_fraction=${fmt(oh.seconds / stageSeconds)}`);
    console.log(`upload_mb_s=${fmt(tr.up, 1)}`);
    console.log(`download_mb_s=${fmt(tr.down, 1)}`);
  } finally {
    await s3.stop();
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
