import { Context, log } from '@temporalio/activity';
import type { Duration } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openObject, openStore, type ObjectStore } from '../../store';
import type { ActivityDeps } from '../deps';
import { hashInputs, sha256 } from '../artifacts/hashing';
import { commitManifest, finishedStep, outputsIntact, type OutputEntry } from '../artifacts/manifest';
import { downloadPrefix, localModel, uploadDir } from '../artifacts/transfer';
import { whileHeartbeating } from '../heartbeat';
import { runTrainerProcess, type TrainerEvent } from './trainer-process';
import type { TrainerProgress, TrainInput, TrainResult } from '../types';

interface CheckpointManifest {
  step: number;
  inputsHash: string;
  files: OutputEntry[];
}

const pad = (step: number) => String(step).padStart(9, '0');

/** Newest checkpoint whose manifest (committed last) matches these inputs and whose files are all there. */
export async function newestCompleteCheckpoint(
  store: ObjectStore,
  prefix: string,
  inputsHash: string,
): Promise<{ step: number; key: string } | undefined> {
  const manifests = (await store.list(`${prefix}/`))
    .filter((k) => /\/step-\d+\/manifest\.json$/.test(k))
    .sort()
    .reverse();
  for (const key of manifests) {
    const m = JSON.parse(await store.getText(key)) as CheckpointManifest;
    if (m.inputsHash !== inputsHash) continue;
    if (await outputsIntact(store, m.files)) return { step: m.step, key: key.replace(/\/manifest\.json$/, '') };
    log.warn('skipping incomplete checkpoint', { key });
  }
  return undefined;
}

/**
 * Fine-tunes one stage (or the One-off baseline) with the Python trainer. Checkpoints go to the store as the trainer
 * writes them, each committed by a manifest, and a retried or restarted activity resumes from the newest complete one.
 */
export async function trainStage(deps: ActivityDeps, input: TrainInput): Promise<TrainResult> {
  const store = openStore(input.store, deps.env);
  const base = `${input.runId}/train/${input.name}`;
  const t = input.training;
  const inputsHash = hashInputs({
    name: input.name,
    dataSha256: input.dataSha256,
    initModel: input.initModel,
    maxSteps: input.maxSteps,
    hyper: {
      ...t,
      progressTimeout: undefined,
      heartbeatTimeout: undefined,
      stopGracePeriod: undefined,
      maxAttempts: undefined,
      keepCheckpoints: undefined,
    },
  });
  const done = await finishedStep<TrainResult>(store, `${base}/manifest.json`, inputsHash);
  if (done) return { ...done, reused: true };
  const progress: { latest: TrainerProgress } = {
    latest: { name: input.name, step: 0, totalSteps: input.maxSteps, resumedFromStep: 0 },
  };
  return whileHeartbeating(
    () => progress.latest,
    () => train(deps, input, { store, base, inputsHash, progress }),
  );
}

async function train(
  deps: ActivityDeps,
  input: TrainInput,
  {
    store,
    base,
    inputsHash,
    progress,
  }: { store: ObjectStore; base: string; inputsHash: string; progress: { latest: TrainerProgress } },
): Promise<TrainResult> {
  const ctx = Context.current();
  const t = input.training;

  const work = join(deps.workDir, input.runId, 'train', input.name);
  const checkpointsDir = join(work, 'checkpoints');
  await rm(checkpointsDir, { recursive: true, force: true });
  await mkdir(checkpointsDir, { recursive: true });
  const { store: dataStore, key: dataKey } = openObject(input.dataUri, deps.env);
  const trainFile = join(work, 'train.jsonl');
  await dataStore.getFile(dataKey, trainFile);
  const modelPath = await localModel(deps.env, input.initModel, join(work, 'init-model'), 'input.training.baseModel');

  const resume = await newestCompleteCheckpoint(store, `${base}/checkpoints`, inputsHash);
  let resumeDir: string | undefined;
  if (resume) {
    resumeDir = join(checkpointsDir, `checkpoint-${resume.step}`);
    await downloadPrefix(store, resume.key, resumeDir, (k) => k.endsWith('/manifest.json'));
    log.info('resuming from checkpoint', { name: input.name, step: resume.step });
  }

  const finalDir = join(work, 'final');
  await rm(finalDir, { recursive: true, force: true });
  const cuda = t.bf16 === 'auto' ? undefined : t.bf16;
  const config = {
    train_file: trainFile,
    final_dir: finalDir,
    max_length: t.maxLength,
    resume_from_checkpoint: resumeDir ?? null,
    parent_pid: process.pid,
    model_name_or_path: modelPath,
    model_seed: t.seed,
    output_dir: checkpointsDir,
    max_steps: input.maxSteps,
    per_device_train_batch_size: t.batchSize,
    gradient_accumulation_steps: t.gradientAccumulation,
    learning_rate: t.learningRate,
    weight_decay: t.weightDecay,
    adam_beta1: t.adamBeta1,
    adam_beta2: t.adamBeta2,
    max_grad_norm: t.maxGradNorm,
    lr_scheduler_type: t.scheduler,
    warmup_ratio: t.warmupRatio,
    seed: t.seed,
    save_strategy: 'steps',
    save_steps: t.saveSteps,
    logging_steps: 1,
    // 'auto' lets the trainer pick bf16 only where CUDA supports it.
    ...(cuda === undefined ? {} : { bf16: cuda }),
    gradient_checkpointing: t.gradientCheckpointing,
    report_to: 'none',
  };
  const configPath = join(work, 'config.json');
  await writeFile(configPath, JSON.stringify(config, null, 2));

  progress.latest = { ...progress.latest, step: resume?.step ?? 0, resumedFromStep: resume?.step ?? 0 };
  let doneEvent: TrainerEvent | undefined;
  const uploaded: number[] = [];

  await runTrainerProcess({
    python: deps.python,
    script: join(deps.trainerDir, 'train.py'),
    configPath,
    cwd: work,
    env: deps.env,
    progressTimeoutMs: msToNumber(t.progressTimeout as Duration),
    graceMs: msToNumber(t.stopGracePeriod as Duration),
    heartbeat: () => ctx.heartbeat(progress.latest),
    onSpawn: (pid) => (progress.latest = { ...progress.latest, pid }),
    onEvent: async (e) => {
      if (e.event === 'start') {
        progress.latest = {
          ...progress.latest,
          totalSteps: Number(e.total_steps),
          resumedFromStep: Number(e.resumed_from_step ?? 0),
        };
        ctx.heartbeat(progress.latest);
      } else if (e.event === 'progress') {
        progress.latest = {
          ...progress.latest,
          step: Number(e.step),
          totalSteps: Number(e.total_steps),
          loss: Number(e.loss),
          learningRate: Number(e.learning_rate),
        };
        ctx.heartbeat(progress.latest);
      } else if (e.event === 'checkpoint') {
        const step = Number(e.step);
        const prefix = `${base}/checkpoints/step-${pad(step)}`;
        const files = await uploadDir(store, String(e.path), prefix);
        // The manifest goes last: a checkpoint without one is never resumed from.
        await store.put(
          `${prefix}/manifest.json`,
          JSON.stringify({ step, inputsHash, files } satisfies CheckpointManifest),
        );
        uploaded.push(step);
        ctx.heartbeat(progress.latest);
        await pruneCheckpoints(store, `${base}/checkpoints`, t.keepCheckpoints, inputsHash);
        // The local copy is no longer needed once it is safe in the store.
        await rm(String(e.path), { recursive: true, force: true });
      } else if (e.event === 'done') {
        doneEvent = e;
      }
    },
  });
  if (!doneEvent) throw new Error('trainer exited without its "done" line');

  const outputs = await uploadDir(store, finalDir, `${base}/final`);
  const losses = { first: Number(doneEvent.loss_first), last: Number(doneEvent.loss_last) };
  const result: TrainResult = {
    name: input.name,
    modelUri: store.uriFor(`${base}/final`),
    steps: Number(doneEvent.total_steps ?? input.maxSteps),
    lossFirst: losses.first,
    lossLast: losses.last,
    resumedFromStep: progress.latest.resumedFromStep ?? 0,
    attempts: ctx.info.attempt,
    reused: false,
  };
  const lossesJson = JSON.stringify({ losses: doneEvent.losses ?? [], first: losses.first, last: losses.last });
  await store.put(`${base}/losses.json`, lossesJson);
  await commitManifest(store, `${base}/manifest.json`, {
    runId: input.runId,
    step: `train/${input.name}`,
    inputsHash,
    outputs: [
      ...outputs,
      { key: `${base}/losses.json`, bytes: Buffer.byteLength(lossesJson), sha256: sha256(lossesJson) },
    ],
    result,
  });
  await rm(work, { recursive: true, force: true });
  return result;
}

/** Keeps the newest `keep` committed checkpoints; the manifest goes first so no manifest ever names missing files. */
async function pruneCheckpoints(store: ObjectStore, prefix: string, keep: number, inputsHash: string): Promise<void> {
  const steps = [
    ...new Set((await store.list(`${prefix}/`)).flatMap((k) => /\/(step-\d+)\//.exec(k)?.[1] ?? [])),
  ].sort();
  const ours: string[] = [];
  const foreign: string[] = [];
  for (const s of steps) {
    const key = `${prefix}/${s}/manifest.json`;
    if (!(await store.exists(key))) continue;
    const m = JSON.parse(await store.getText(key)) as CheckpointManifest;
    (m.inputsHash === inputsHash ? ours : foreign).push(s);
  }
  // Checkpoints of another configuration can never be resumed from, and must not count towards `keep`.
  const doomed = [...foreign, ...ours.slice(0, Math.max(0, ours.length - keep))];
  // Uploads cut short by a crash left folders with no manifest; those older than a committed one are garbage.
  const newest = ours[ours.length - 1];
  const partial = steps.filter((s) => !ours.includes(s) && !foreign.includes(s) && newest !== undefined && s < newest);
  for (const s of partial) await store.deletePrefix(`${prefix}/${s}/`);
  for (const s of doomed) {
    // Manifest first: a half-pruned checkpoint is then merely incomplete, never named by a manifest.
    await store.delete(`${prefix}/${s}/manifest.json`);
    await store.deletePrefix(`${prefix}/${s}/`);
  }
}
