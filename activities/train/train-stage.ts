import { Context, log } from '@temporalio/activity';
import ms, { type StringValue } from 'ms';
import { ApplicationFailure } from '@temporalio/common';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { allowedLocation, openStore } from '../../store';
import type { OutputEntry } from '../artifacts/manifest';
import type { ActivityDeps } from '../deps';
import { trainKeys } from '../artifacts/run-keys';
import { runStep, type StepOutputs } from '../artifacts/step';
import { cachedByTrainer } from '../python/model-ref';
import { checkModel } from '../python/check-model';
import { keepModel, localModel, receiveFile } from '../artifacts/hand-off';
import {
  commitCheckpoint,
  completeCheckpoints,
  downloadNewestIntact,
  optimizerStateFile,
  pruneCheckpoints,
  type CommittedCheckpoint,
} from './checkpoints';
import { runTrainerProcess } from '../python/trainer-process';
import type { TrainDone } from '../../common/settings/trainer-events';
import { earlierTrainingIdentities, trainerConfig, trainerLaunch, trainingIdentity } from './trainer-config';
import type { TrainerProgress, TrainInput, TrainResult } from '../types';

/**
 * Fine-tunes one stage (or the One-off baseline) with the Python trainer. Checkpoints go to the store as the trainer
 * writes them, each committed by a manifest, and a retried or restarted activity resumes from the newest complete one.
 */
export async function trainStage(deps: ActivityDeps, input: TrainInput): Promise<TrainResult> {
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const progress: { latest: TrainerProgress } = {
    latest: { name: input.name, step: 0, totalSteps: input.maxSteps, resumedFromStep: 0 },
  };
  return runStep(
    store,
    {
      runId: input.runId,
      step: `train/${input.name}`,
      key: trainKeys(input.runId, input.name).manifest,
      inputsHash: trainingIdentity(input),
      earlierInputsHashes: earlierTrainingIdentities(input),
    },
    (out) => train(deps, input, out, progress),
    { heartbeat: () => progress.latest },
  );
}

async function train(
  deps: ActivityDeps,
  input: TrainInput,
  out: StepOutputs,
  progress: { latest: TrainerProgress },
): Promise<TrainResult> {
  const keys = trainKeys(input.runId, input.name);
  const inputsHash = trainingIdentity(input);
  const ctx = Context.current();
  const { store } = out;
  const t = input.training;

  const work = join(deps.workDir, input.runId, 'train', input.name);
  const checkpointsDir = join(work, 'checkpoints');
  await rm(checkpointsDir, { recursive: true, force: true });
  await mkdir(checkpointsDir, { recursive: true });
  const trainFile = join(work, 'train.jsonl');
  await receiveFile(input.dataUri, deps.env, trainFile, { sha256: input.dataSha256, setting: 'input.dataUri' });
  // Another GPU worker may have run the model check: make sure this one's model cache holds the model too.
  if (cachedByTrainer(input.initModel)) {
    await checkModel(deps, {
      runId: input.runId,
      model: input.initModel,
      maxLength: t.maxLength,
      field: 'input.training.baseModel',
    });
  }
  const modelPath = await localModel(deps, input.initModel, join(work, 'init-model'), 'input.training.baseModel');

  // The trainer's whole log, kept on disk as it comes (never in memory) and copied to the store beside the
  // checkpoints, also when the attempt fails.
  const logFile = join(work, `attempt-${ctx.info.attempt}.log`);
  const trainerLog = createWriteStream(logFile);
  const uploadLog = async () => {
    await new Promise<void>((resolve) => trainerLog.write('', () => resolve()));
    await store.putFile(keys.log(ctx.info.attempt), logFile);
  };

  const candidates = await completeCheckpoints(store, keys.checkpoints, inputsHash, earlierTrainingIdentities(input));
  const finalDir = join(work, 'final');
  let doneEvent: TrainDone | undefined;
  /** The files of the newest checkpoint in the store: the final model's weights are among them. */
  let lastCheckpoint: readonly OutputEntry[] = [];
  let unloadable: number | undefined;
  try {
    for (;;) {
      const usable = candidates.filter((c) => c.step !== unloadable);
      const resume = await downloadNewestIntact(store, usable, (step) => join(checkpointsDir, `checkpoint-${step}`));
      const resumeDir = resume && join(checkpointsDir, `checkpoint-${resume.step}`);
      if (resume) log.info('resuming from checkpoint', { name: input.name, step: resume.step });
      lastCheckpoint = resume?.outputs ?? [];
      let started = false;
      try {
        doneEvent = await runTrainer(deps, input, {
          work,
          checkpointsDir,
          finalDir,
          trainFile,
          modelPath,
          resume,
          resumeDir,
          progress,
          onStart: () => (started = true),
          onStderr: (line) => trainerLog.write(`${line}\n`),
          onCheckpoint: async (step, path) => {
            // The checkpoint at the last step is only ever reloaded as the final weights, never to train on.
            const last = step >= (progress.latest.totalSteps ?? input.maxSteps);
            const skip = last && !t.keepOptimizerInFinal ? optimizerStateFile : undefined;
            lastCheckpoint = await commitCheckpoint(
              store,
              { runId: input.runId, step: `train/${input.name}`, inputsHash, folder: keys.checkpoint(step) },
              path,
              step,
              { skip },
            );
            ctx.heartbeat(progress.latest);
            await pruneCheckpoints(store, keys.checkpoints, t.keepCheckpoints, inputsHash);
            await uploadLog();
          },
        });
        break;
      } catch (err) {
        // A checkpoint whose bytes are intact but that the trainer cannot load (it dies before training starts):
        // try the next older one, once; a second such failure is not the checkpoint's fault.
        const crashedLoading =
          resume &&
          !started &&
          unloadable === undefined &&
          err instanceof ApplicationFailure &&
          err.type === 'TrainerCrashed';
        if (!crashedLoading) throw err;
        log.warn('the trainer could not load a checkpoint; trying the next older one', {
          key: resume.key,
          error: err.message.split('\n').slice(-1)[0],
        });
        unloadable = resume.step;
        await rm(checkpointsDir, { recursive: true, force: true });
        await mkdir(checkpointsDir, { recursive: true });
      }
    }
  } finally {
    await uploadLog().catch((err: unknown) => log.warn('could not keep the trainer log', { error: String(err) }));
    trainerLog.end();
  }
  if (!doneEvent) throw new Error('trainer exited without its "done" line');

  // The final weights are the last checkpoint's: copied inside the store, not uploaded a second time.
  const finalEntries = await out.putDir(finalDir, keys.final, { known: lastCheckpoint });
  await putMetrics(out, checkpointsDir, keys);
  // null (no logged loss) reads as NaN, as it always has.
  const losses = { first: Number(doneEvent.loss_first), last: Number(doneEvent.loss_last) };
  const result: TrainResult = {
    name: input.name,
    modelUri: store.uriFor(keys.final),
    steps: doneEvent.total_steps,
    lossFirst: losses.first,
    lossLast: losses.last,
    resumedFromStep: progress.latest.resumedFromStep ?? 0,
    attempts: ctx.info.attempt,
    reused: false,
    precision: doneEvent.precision,
    ...(typeof doneEvent.cpu_threads === 'number' ? { cpuThreads: doneEvent.cpu_threads } : {}),
  };
  const lossesJson = JSON.stringify({ losses: doneEvent.losses, first: losses.first, last: losses.last });
  await out.put(keys.losses, lossesJson);
  // The next stage or generation on this worker takes the model from here instead of downloading it.
  await keepModel(deps.workDir, finalDir, finalEntries, keys.final);
  // The step's manifest is committed by runStep once this returns.
  await rm(work, { recursive: true, force: true });
  return result;
}

/** Metrics files (JSONL) the trainer wrote at the top of its output folder, as outputs of the step. */
async function putMetrics(out: StepOutputs, dir: string, keys: ReturnType<typeof trainKeys>): Promise<void> {
  const files = (await readdir(dir, { withFileTypes: true })).filter((f) => f.isFile() && f.name.endsWith('.jsonl'));
  for (const f of files.sort((a, b) => a.name.localeCompare(b.name))) {
    await out.putFile(keys.metrics(f.name), join(dir, f.name));
  }
}

/** One run of the trainer process; returns its "done" event. */
async function runTrainer(
  deps: ActivityDeps,
  input: TrainInput,
  o: {
    work: string;
    checkpointsDir: string;
    finalDir: string;
    trainFile: string;
    modelPath: string;
    resume: CommittedCheckpoint | undefined;
    resumeDir: string | undefined;
    progress: { latest: TrainerProgress };
    onStart: () => void;
    onStderr: (line: string) => void;
    onCheckpoint: (step: number, path: string) => Promise<void>;
  },
): Promise<TrainDone | undefined> {
  const ctx = Context.current();
  const t = input.training;
  const { progress } = o;
  await rm(o.finalDir, { recursive: true, force: true });
  const config = trainerConfig(t, input.maxSteps, {
    train_file: o.trainFile,
    final_dir: o.finalDir,
    output_dir: o.checkpointsDir,
    model_name_or_path: o.modelPath,
    resume_from_checkpoint: o.resumeDir ?? null,
    parent_pid: process.pid,
  });
  const configPath = join(o.work, 'config.json');
  await writeFile(configPath, JSON.stringify(config, null, 2));

  const from = o.resume?.step ?? 0;
  progress.latest = { ...progress.latest, step: from, resumedFromStep: from };
  let doneEvent: TrainDone | undefined;
  await runTrainerProcess({
    python: deps.python,
    module: 'pift.train',
    configPath,
    cwd: o.work,
    env: deps.env,
    progressTimeoutMs: ms(t.progressTimeout as StringValue),
    graceMs: ms(t.stopGracePeriod as StringValue),
    heartbeat: () => ctx.heartbeat(progress.latest),
    onSpawn: (pid) => (progress.latest = { ...progress.latest, pid }),
    launch: trainerLaunch(t),
    onStderr: o.onStderr,
    onEvent: async (e) => {
      if (e.event === 'start') {
        o.onStart();
        progress.latest = { ...progress.latest, totalSteps: e.total_steps, resumedFromStep: e.resumed_from_step };
        ctx.heartbeat(progress.latest);
      } else if (e.event === 'progress') {
        progress.latest = {
          ...progress.latest,
          step: e.step,
          totalSteps: e.total_steps,
          loss: e.loss,
          learningRate: e.learning_rate,
          // null for what the trainer cannot know yet, such as the first ETA.
          ...(e.grad_norm === null ? {} : { gradNorm: e.grad_norm }),
          ...(e.tokens_per_second === null ? {} : { tokensPerSecond: e.tokens_per_second }),
          ...(e.eta_seconds === null ? {} : { etaSeconds: e.eta_seconds }),
        };
        ctx.heartbeat(progress.latest);
      } else if (e.event === 'checkpoint') {
        await o.onCheckpoint(e.step, e.path);
        // The local copy is no longer needed once it is safe in the store.
        await rm(e.path, { recursive: true, force: true });
      } else if (e.event === 'done') {
        doneEvent = e;
      }
    },
  });
  return doneEvent;
}
