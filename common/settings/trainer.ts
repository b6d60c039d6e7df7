// The trainer contract: exactly the object written to config.json for `python trainer/train.py CONFIG` (fields of
// ScriptArguments, ModelArguments and PiftTrainingArguments in trainer/pift/config.py; a pytest checks them against
// schema/trainer-config.schema.json). Constraints come from ./constraints, shared with the workflow input.
import { Type, type Static } from '@sinclair/typebox';
import * as c from './constraints';
import { strict } from './define';
import { TRAINING_PRESETS } from './constants';
import { TrainingSchema } from './schema';

const local = (description: string) => Type.String({ minLength: 1, description });

/** Paths on the GPU worker and its process id: they differ between attempts and never change what is trained. */
export const TrainerLocalSchema = strict({
  train_file: local('JSONL of the rows to train on'),
  final_dir: local('where the final model and tokenizer are saved'),
  output_dir: local('where checkpoints are written'),
  model_name_or_path: local("'builtin:tiny-llama' or the local directory of the initial weights"),
  resume_from_checkpoint: Type.Union([local('checkpoint directory to resume from'), Type.Null()]),
  parent_pid: Type.Integer({ minimum: 1, description: 'the trainer exits when this process (the worker) dies' }),
});

/** Everything else the trainer receives: what decides the weights, and so the training step's identity. */
export const TrainerSettingsSchema = strict({
  max_length: Type.Integer({ ...c.maxLength(), description: 'tokens per training sequence' }),
  model_seed: Type.Integer({ description: 'initialisation seed of the builtin model' }),
  max_steps: Type.Integer({ ...c.positiveInt(), description: 'optimizer steps of this run' }),
  per_device_train_batch_size: c.positiveInt(),
  gradient_accumulation_steps: c.positiveInt(),
  learning_rate: c.learningRate(),
  weight_decay: c.weightDecay(),
  adam_beta1: c.unitInterval(),
  adam_beta2: c.unitInterval(),
  max_grad_norm: c.maxGradNorm(),
  lr_scheduler_type: c.scheduler(),
  warmup_ratio: c.unitInterval(),
  seed: c.seed(),
  save_strategy: Type.Literal('steps'),
  save_steps: c.positiveInt(),
  save_every_minutes: Type.Optional(
    Type.Number({ exclusiveMinimum: 0, description: 'also save once this many minutes passed since the last save' }),
  ),
  logging_steps: c.positiveInt(),
  bf16: Type.Optional(
    Type.Boolean({
      description: 'absent: bf16 + tf32 where the GPU supports bf16, fp16 on older GPUs, fp32 on a CPU',
    }),
  ),
  gradient_checkpointing: Type.Boolean(),
  conversation_template: Type.Optional(
    Type.Union([Type.Literal('auto'), Type.Literal('model'), Type.Literal('paper')], {
      description: 'layout of conversation rows; absent: auto',
    }),
  ),
  lora: Type.Optional(
    strict(
      {
        r: c.positiveInt(),
        alpha: Type.Number({ exclusiveMinimum: 0 }),
        dropout: Type.Number({ minimum: 0, exclusiveMaximum: 1 }),
        target_modules: Type.Union([
          Type.Literal('all-linear'),
          Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
        ]),
        quantize: Type.Optional(Type.Literal('4bit')),
      },
      {
        description: 'LoRA adapters (PEFT) instead of full fine-tuning; quantize: QLoRA; absent: full fine-tuning',
      },
    ),
  ),
  report_to: Type.Union([Type.Literal('none'), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], {
    description: "transformers' report_to: experiment trackers beside the stdout protocol",
  }),
});

export const TrainerConfigSchema = Type.Composite([TrainerLocalSchema, TrainerSettingsSchema], {
  additionalProperties: false,
  title: 'Phased IFT trainer config',
  description: 'config.json of `python trainer/train.py CONFIG`, written by the trainStage activity',
});

export type TrainerLocal = Static<typeof TrainerLocalSchema>;
export type TrainerSettings = Static<typeof TrainerSettingsSchema>;
export type TrainerConfig = Static<typeof TrainerConfigSchema>;

const trainingDefault = (name: keyof typeof TrainingSchema.properties) =>
  (TrainingSchema.properties[name] as { default?: unknown }).default;

/**
 * What the trainer applies to a field its config leaves out (someone running `python -m pift.train` by hand; the
 * orchestrator writes every field): the workflow's own defaults for a pretrained model, generated into
 * trainer/pift/configs/defaults.json by `npm run schema`, so that they live here alone.
 */
export const trainerDefaults = () =>
  ({
    max_length: TRAINING_PRESETS.paper.maxLength,
    learning_rate: TRAINING_PRESETS.paper.learningRate,
    weight_decay: trainingDefault('weightDecay'),
    adam_beta1: trainingDefault('adamBeta1'),
    adam_beta2: trainingDefault('adamBeta2'),
    max_grad_norm: trainingDefault('maxGradNorm'),
    lr_scheduler_type: trainingDefault('scheduler'),
    warmup_ratio: trainingDefault('warmupRatio'),
    seed: trainingDefault('seed'),
  }) satisfies Partial<Record<keyof TrainerSettings, unknown>>;
