import { Context, log } from '@temporalio/activity';
import type { Duration } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { allowedLocation, openObject, openStore } from '../../store';
import type { ActivityDeps } from '../deps';
import { manifestIn, trainKeys } from '../artifacts/run-keys';
import { runStep, type StepOutputs } from '../artifacts/step';
import { downloadPrefix, localModel } from '../artifacts/transfer';
import { cachedByTrainer } from '../validate/model-ref';
import { checkModel } from './check-model';
import { commitCheckpoint, newestCompleteCheckpoint, pruneCheckpoints } from './checkpoints';
import { runTrainerProcess, type TrainerEvent } from './trainer-process';
import { earlierTrainingIdentities, trainerConfig, trainerLaunch, trainingIdentity } from './trainer-config';
import type { TrainerProgress, TrainInput, TrainResult } from '../types';

/**
 * Fine-tunes one stage (or the One-off baseline) with the Python trainer. Checkpoints go to the store as the trainer
 * writes them, each committed by a manifest, and a retried or restarted activity resumes from the newest complete one.
 */
export async function trainStage(deps: ActivityDeps, input: TrainInput): Promise<TrainResult> {
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const keys = trainKeys(input.runId, input.name);
  const inputsHash = trainingIdentity(input);
  const earlierInputsHashes = earlierTrainingIdentities(input);
  const progress: { latest: TrainerProgress } = {
    latest: { name: input.name, step: 0, totalSteps: input.maxSteps, resumedFromStep: 0 },
  };
  return runStep(
    store,
    { runId: input.runId, step: `train/${input.name}`, key: keys.manifest, inputsHash, earlierInputsHashes },
    (out) => train(deps, input, { out, keys, inputsHash, earlierInputsHashes, progress }),
    { heartbeat: () => progress.latest },
  );
}

async function train(
  deps: ActivityDeps,
  input: TrainInput,
  {
    out,
    keys,
    inputsHash,
    earlierInputsHashes,
    progress,
  }: {
    out: StepOutputs;
    keys: ReturnType<typeof trainKeys>;
    inputsHash: string;
    earlierInputsHashes: readonly string[];
    progress: { latest: TrainerProgress };
  },
): Promise<TrainResult> {
  const ctx = Context.current();
  const { store } = out;
  const t = input.training;

  const work = join(deps.workDir, input.runId, 'train', input.name);
  const checkpointsDir = join(work, 'checkpoints');
  await rm(checkpointsDir, { recursive: true, force: true });
  await mkdir(checkpointsDir, { recursive: true });
  const { store: dataStore, key: dataKey } = openObject(input.dataUri, deps.env);
  const trainFile = join(work, 'train.jsonl');
  await dataStore.getFile(dataKey, trainFile);
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

  const resume = await newestCompleteCheckpoint(store, keys.checkpoints, inputsHash, earlierInputsHashes);
  let resumeDir: string | undefined;
  if (resume) {
    resumeDir = join(checkpointsDir, `checkpoint-${resume.step}`);
    await downloadPrefix(store, resume.key, resumeDir, (k) => k === manifestIn(resume.key));
    log.info('resuming from checkpoint', { name: input.name, step: resume.step });
  }

  const finalDir = join(work, 'final');
  await rm(finalDir, { recursive: true, force: true });
  const config = trainerConfig(t, input.maxSteps, {
    train_file: trainFile,
    final_dir: finalDir,
    output_dir: checkpointsDir,
    model_name_or_path: modelPath,
    resume_from_checkpoint: resumeDir ?? null,
    parent_pid: process.pid,
  });
  const configPath = join(work, 'config.json');
  await writeFile(configPath, JSON.stringify(config, null, 2));

  progress.latest = { ...progress.latest, step: resume?.step ?? 0, resumedFromStep: resume?.step ?? 0 };
  let doneEvent: TrainerEvent | undefined;
  const uploaded: number[] = [];

  await runTrainerProcess({
    python: deps.python,
    module: 'pift.train',
    configPath,
    cwd: work,
    env: deps.env,
    progressTimeoutMs: msToNumber(t.progressTimeout as Duration),
    graceMs: msToNumber(t.stopGracePeriod as Duration),
    heartbeat: () => ctx.heartbeat(progress.latest),
    onSpawn: (pid) => (progress.latest = { ...progress.latest, pid }),
    launch: trainerLaunch(t),
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
        await commitCheckpoint(
          store,
          { runId: input.runId, step: `train/${input.name}`, inputsHash, folder: keys.checkpoint(step) },
          String(e.path),
          step,
        );
        uploaded.push(step);
        ctx.heartbeat(progress.latest);
        await pruneCheckpoints(store, keys.checkpoints, t.keepCheckpoints, inputsHash);
        // The local copy is no longer needed once it is safe in the store.
        await rm(String(e.path), { recursive: true, force: true });
      } else if (e.event === 'done') {
        doneEvent = e;
      }
    },
  });
  if (!doneEvent) throw new Error('trainer exited without its "done" line');

  await out.putDir(finalDir, keys.final);
  const losses = { first: Number(doneEvent.loss_first), last: Number(doneEvent.loss_last) };
  const result: TrainResult = {
    name: input.name,
    modelUri: store.uriFor(keys.final),
    steps: Number(doneEvent.total_steps ?? input.maxSteps),
    lossFirst: losses.first,
    lossLast: losses.last,
    resumedFromStep: progress.latest.resumedFromStep ?? 0,
    attempts: ctx.info.attempt,
    reused: false,
    ...(typeof doneEvent.precision === 'string' ? { precision: doneEvent.precision } : {}),
  };
  const lossesJson = JSON.stringify({ losses: doneEvent.losses ?? [], first: losses.first, last: losses.last });
  await out.put(keys.losses, lossesJson);
  // The step's manifest is committed by runStep once this returns.
  await rm(work, { recursive: true, force: true });
  return result;
}
