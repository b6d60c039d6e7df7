import type { LoraOptions, ResolvedTraining } from '../../common/settings/schema';
import type { TrainerConfig, TrainerLocal, TrainerSettings } from '../../common/settings/trainer';
import { hashInputs } from '../artifacts/hashing';
import type { TrainInput } from '../types';
import type { TrainerLaunch } from '../python/trainer-process';

/**
 * Bump when what the identity covers changes, and add the old formula to `earlierTrainingIdentities`, so runs started
 * before still find their finished stages and checkpoints.
 */
export const TRAINING_IDENTITY_FORMAT = 2;

/** The settings part of the trainer's config: the one mapping from workflow settings to trainer fields. */
export function trainerSettings(t: ResolvedTraining, maxSteps: number): TrainerSettings {
  return {
    max_length: t.maxLength,
    model_seed: t.seed,
    max_steps: maxSteps,
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
    // Absent unless set, so the identity of every training that does not use it stays as it was.
    ...(t.saveEveryMinutes === undefined ? {} : { save_every_minutes: t.saveEveryMinutes }),
    logging_steps: 1,
    // 'auto' lets the trainer pick bf16 only where CUDA supports it.
    ...(t.bf16 === 'auto' ? {} : { bf16: t.bf16 }),
    gradient_checkpointing: t.gradientCheckpointing,
    // Only when set, so that the identity of a training that never named it stays what it was.
    ...(t.conversationTemplate === undefined ? {} : { conversation_template: t.conversationTemplate }),
    report_to: t.reportTo?.length ? [...t.reportTo] : 'none',
    // Absent unless set, so full fine-tuning keeps the identity it always had.
    ...(t.lora ? { lora: loraSettings(t.lora as LoraOptions) } : {}), // ajv filled its defaults
  };
}

function loraSettings({ r, alpha, dropout, targetModules, quantize }: LoraOptions): TrainerSettings['lora'] {
  const modules = targetModules === 'all-linear' ? targetModules : [...targetModules];
  return { r, alpha, dropout, target_modules: modules, ...(quantize ? { quantize } : {}) };
}

/** How the trainer is launched, when not as one plain process (runs started before `processes` existed ran one). */
export function trainerLaunch(t: Pick<ResolvedTraining, 'processes' | 'distributed'>): TrainerLaunch | undefined {
  const processes = t.processes ?? 1;
  return processes > 1 ? { processes, distributed: t.distributed } : undefined;
}

/** Exactly what `python trainer/train.py CONFIG` reads (schema/trainer-config.schema.json). */
export function trainerConfig(t: ResolvedTraining, maxSteps: number, local: TrainerLocal): TrainerConfig {
  return { ...local, ...trainerSettings(t, maxSteps) };
}

/**
 * Identity of a training run (its manifest's and its checkpoints' inputsHash): what the trainer receives, less the
 * machine-local paths and pid, plus what those paths hold. A setting the trainer does not receive (timeouts,
 * attempts, checkpoints kept) cannot change it, so adding one keeps older runs resumable.
 */
export function trainingIdentity(
  input: Pick<TrainInput, 'name' | 'dataSha256' | 'initModel' | 'maxSteps' | 'training'>,
) {
  return hashInputs({
    format: TRAINING_IDENTITY_FORMAT,
    name: input.name,
    dataSha256: input.dataSha256,
    initModel: input.initModel,
    trainer: trainerSettings(input.training, input.maxSteps),
    // Several processes write checkpoints of another layout (one RNG state per rank, sharded states with FSDP or
    // ZeRO-3), so they are another training; one process keeps the identity it always had.
    ...(trainerLaunch(input.training) ? { launch: trainerLaunch(input.training) } : {}),
  });
}

/** What the format-1 identity hashed of the resolved settings. */
const FORMAT_ONE_SETTINGS = (
  'baseModel epochs learningRate batchSize gradientAccumulation maxLength warmupRatio weightDecay adamBeta1 ' +
  'adamBeta2 maxGradNorm scheduler seed saveSteps bf16 gradientCheckpointing'
).split(' ') as Array<keyof ResolvedTraining>;

/**
 * The identities the previous versions gave the same training (format 1: the resolved settings less timeouts,
 * attempts and checkpoints kept), so a run started before the format changed reuses its finished stages and resumes
 * from its checkpoints instead of being refused.
 */
export function earlierTrainingIdentities(
  input: Pick<TrainInput, 'name' | 'dataSha256' | 'initModel' | 'maxSteps' | 'training'>,
): string[] {
  const { name, dataSha256, initModel, maxSteps, training: t } = input;
  // Key order is no part of a hash (canonical JSON).
  const hyper = Object.fromEntries(FORMAT_ONE_SETTINGS.map((k) => [k, t[k]]));
  return [hashInputs({ name, dataSha256, initModel, maxSteps, hyper })];
}
