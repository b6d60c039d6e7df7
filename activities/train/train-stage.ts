import { Context, log } from '@temporalio/activity';
import ms, { type StringValue } from 'ms';
import { ApplicationFailure } from '@temporalio/common';
import { createWriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { allowedLocation, openStore, type ObjectStore } from '../../store';
import type { OutputEntry } from '../artifacts/manifest';
import type { ActivityDeps } from '../deps';
import { trainKeys } from '../artifacts/run-keys';
import { runStep, type StepOutputs, type StepSpec } from '../artifacts/step';
import { cachedByTrainer } from '../python/model-ref';
import { checkModel } from '../python/check-model';
import { keepModel, localModel, receiveFile } from '../artifacts/hand-off';
import {
  commitCheckpoint,
  completeCheckpoints,
  downloadNewestIntact,
  optimizerStateFile,
  pruneCheckpoints,
} from './checkpoints';
import { runTrainerProcess } from '../python/trainer-process';
import type { TrainDone, TrainerEvent } from '../../common/settings/trainer-events';
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
  const spec = {
    runId: input.runId,
    step: `train/${input.name}`,
    key: trainKeys(input.runId, input.name).manifest,
    inputsHash: trainingIdentity(input),
    earlierInputsHashes: earlierTrainingIdentities(input),
  };
  return runStep(store, spec, (out) => train(deps, input, out, progress, spec), { heartbeat: () => progress.latest });
}

/** What the trainer's events told an attempt, read by the attempt loop and by the final commit. */
interface Attempt {
  started: boolean;
  done?: TrainDone;
  /** The files of the newest checkpoint in the store: the final model's weights are among them. */
  lastCheckpoint: readonly OutputEntry[];
}

async function train(
  deps: ActivityDeps,
  input: TrainInput,
  out: StepOutputs,
  progress: { latest: TrainerProgress },
  { inputsHash, earlierInputsHashes }: StepSpec,
): Promise<TrainResult> {
  const keys = trainKeys(input.runId, input.name);
  const ctx = Context.current();
  const { store } = out;
  const t = input.training;
  const work = join(deps.workDir, input.runId, 'train', input.name);
  const checkpointsDir = join(work, 'checkpoints');
  const { trainFile, modelPath } = await receiveInputs(deps, input, work, checkpointsDir);

  // The trainer's whole log, kept on disk as it comes (never in memory) and copied to the store beside the
  // checkpoints, also when the attempt fails.
  const logFile = join(work, `attempt-${ctx.info.attempt}.log`);
  const trainerLog = createWriteStream(logFile);
  const uploadLog = async () => {
    await new Promise<void>((resolve) => trainerLog.write('', () => resolve()));
    await store.putFile(keys.log(ctx.info.attempt), logFile);
  };

  const candidates = await completeCheckpoints(store, keys.checkpoints, inputsHash, earlierInputsHashes);
  const finalDir = join(work, 'final');
  const configPath = join(work, 'config.json');
  let attempt: Attempt = { started: false, lastCheckpoint: [] };
  let unloadable: number | undefined;
  try {
    for (;;) {
      const usable = candidates.filter((c) => c.step !== unloadable);
      const resume = await downloadNewestIntact(store, usable, (step) => join(checkpointsDir, `checkpoint-${step}`));
      const resumeDir = resume && join(checkpointsDir, `checkpoint-${resume.step}`);
      if (resume) log.info('resuming from checkpoint', { name: input.name, step: resume.step });
      attempt = { started: false, lastCheckpoint: resume?.outputs ?? [] };
      try {
        await rm(finalDir, { recursive: true, force: true });
        const config = trainerConfig(t, input.maxSteps, {
          train_file: trainFile,
          final_dir: finalDir,
          output_dir: checkpointsDir,
          model_name_or_path: modelPath,
          resume_from_checkpoint: resumeDir ?? null,
          parent_pid: process.pid,
        });
        await writeFile(configPath, JSON.stringify(config, null, 2));
        const from = resume?.step ?? 0;
        progress.latest = { ...progress.latest, step: from, resumedFromStep: from };
        await runTrainerProcess({
          python: deps.python,
          module: 'pift.train',
          configPath,
          cwd: work,
          env: deps.env,
          progressTimeoutMs: ms(t.progressTimeout as StringValue),
          graceMs: ms(t.stopGracePeriod as StringValue),
          heartbeat: () => ctx.heartbeat(progress.latest),
          onSpawn: (pid) => (progress.latest = { ...progress.latest, pid }),
          launch: trainerLaunch(t),
          onStderr: (line) => trainerLog.write(`${line}\n`),
          onEvent: trainerEvents(input, store, inputsHash, progress, attempt, uploadLog),
        });
        break;
      } catch (err) {
        // A checkpoint whose bytes are intact but that the trainer cannot load (it dies before training starts):
        // try the next older one, once; a second such failure is not the checkpoint's fault.
        const crashedLoading =
          resume &&
          !attempt.started &&
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
  return commitFinal(deps, input, out, progress, attempt, work);
}

/** The stage's rows and its initial weights, in this worker's scratch space; an empty checkpoints folder. */
async function receiveInputs(deps: ActivityDeps, input: TrainInput, work: string, checkpointsDir: string) {
  await rm(checkpointsDir, { recursive: true, force: true });
  await mkdir(checkpointsDir, { recursive: true });
  const trainFile = join(work, 'train.jsonl');
  await receiveFile(input.dataUri, deps.env, trainFile, { sha256: input.dataSha256, setting: 'input.dataUri' });
  const field = 'input.training.baseModel';
  // Another GPU worker may have run the model check: make sure this one's model cache holds the model too.
  if (cachedByTrainer(input.initModel)) {
    const maxLength = input.training.maxLength;
    await checkModel(deps, { runId: input.runId, model: input.initModel, maxLength, field });
  }
  const modelPath = await localModel(deps, input.initModel, join(work, 'init-model'), field);
  return { trainFile, modelPath };
}

/** Heartbeats the trainer's progress, and commits each checkpoint to the store as the trainer writes it. */
function trainerEvents(
  input: TrainInput,
  store: ObjectStore,
  inputsHash: string,
  progress: { latest: TrainerProgress },
  attempt: Attempt,
  uploadLog: () => Promise<void>,
) {
  const ctx = Context.current();
  const keys = trainKeys(input.runId, input.name);
  const t = input.training;
  const heartbeat = (news: Partial<TrainerProgress>) =>
    ctx.heartbeat((progress.latest = { ...progress.latest, ...news }));
  return async (e: TrainerEvent<'pift.train'>) => {
    if (e.event === 'start') {
      attempt.started = true;
      heartbeat({ totalSteps: e.total_steps, resumedFromStep: e.resumed_from_step });
    } else if (e.event === 'progress') {
      heartbeat({
        step: e.step,
        totalSteps: e.total_steps,
        loss: e.loss,
        learningRate: e.learning_rate,
        // null for what the trainer cannot know yet, such as the first ETA.
        ...(e.grad_norm === null ? {} : { gradNorm: e.grad_norm }),
        ...(e.tokens_per_second === null ? {} : { tokensPerSecond: e.tokens_per_second }),
        ...(e.eta_seconds === null ? {} : { etaSeconds: e.eta_seconds }),
      });
    } else if (e.event === 'checkpoint') {
      // The checkpoint at the last step is only ever reloaded as the final weights, never to train on.
      const last = e.step >= (progress.latest.totalSteps ?? input.maxSteps);
      const skip = last && !t.keepOptimizerInFinal ? optimizerStateFile : undefined;
      const spec = { runId: input.runId, step: `train/${input.name}`, inputsHash, folder: keys.checkpoint(e.step) };
      attempt.lastCheckpoint = await commitCheckpoint(store, spec, e.path, e.step, { skip });
      ctx.heartbeat(progress.latest);
      await pruneCheckpoints(store, keys.checkpoints, t.keepCheckpoints, inputsHash);
      await uploadLog();
      // The local copy is no longer needed once it is safe in the store.
      await rm(e.path, { recursive: true, force: true });
    } else if (e.event === 'done') {
      attempt.done = e;
    }
  };
}

/** Stores the final weights, metrics and losses of a finished attempt, and keeps the model on this worker. */
async function commitFinal(
  deps: ActivityDeps,
  input: TrainInput,
  out: StepOutputs,
  progress: { latest: TrainerProgress },
  { done, lastCheckpoint }: Attempt,
  work: string,
): Promise<TrainResult> {
  if (!done) throw new Error('trainer exited without its "done" line');
  const keys = trainKeys(input.runId, input.name);
  const finalDir = join(work, 'final');
  // The final weights are the last checkpoint's: copied inside the store, not uploaded a second time.
  const finalEntries = await out.putDir(finalDir, keys.final, { known: lastCheckpoint });
  // Metrics files (JSONL) the trainer wrote at the top of its output folder.
  const metrics = { skip: (path: string) => path.includes('/') || !path.endsWith('.jsonl') };
  await out.putDir(join(work, 'checkpoints'), keys.metrics, metrics);
  // null (no logged loss) reads as NaN, as it always has.
  const losses = { first: Number(done.loss_first), last: Number(done.loss_last) };
  const result: TrainResult = {
    name: input.name,
    modelUri: out.store.uriFor(keys.final),
    steps: done.total_steps,
    lossFirst: losses.first,
    lossLast: losses.last,
    resumedFromStep: progress.latest.resumedFromStep ?? 0,
    attempts: Context.current().info.attempt,
    reused: false,
    precision: done.precision,
    ...(typeof done.cpu_threads === 'number' ? { cpuThreads: done.cpu_threads } : {}),
  };
  await out.put(keys.losses, JSON.stringify({ losses: done.losses, first: losses.first, last: losses.last }));
  // The next stage or generation on this worker takes the model from here instead of downloading it.
  await keepModel(deps.workDir, finalDir, finalEntries, keys.final);
  // The step's manifest is committed by runStep once this returns.
  await rm(work, { recursive: true, force: true });
  return result;
}
