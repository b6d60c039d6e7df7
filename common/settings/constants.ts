// Values that more than one schema or rule shares. Workflow-safe: plain constants, no imports.

/** The trainer refuses shorter sequences (trainer/pift/config.py MIN_MAX_LENGTH); a test keeps the two equal. */
export const MIN_MAX_LENGTH = 32;

/** The paper's judge for both scoring and pairwise evaluation [repo]. */
export const PAPER_JUDGE_MODEL = 'gpt-4-0613';

/** Where runs are stored when neither the input nor the worker's PIFT_STORE names a store (relative to the worker). */
export const DEFAULT_STORE_DIR = '.pift/store';

/**
 * Learning-rate schedules the trainer accepts without extra arguments (a subset of transformers' SchedulerType;
 * a test checks each one against the installed transformers).
 */
export const SCHEDULERS = [
  'linear',
  'cosine',
  'cosine_with_restarts',
  'polynomial',
  'constant',
  'constant_with_warmup',
  'inverse_sqrt',
] as const;

/**
 * Optimisation presets by base model. `paper`: the released script's values for real pretrained models [repo];
 * `tiny`: the builtin tiny model is trained from scratch on a CPU, where the paper's values learn nothing in minutes
 * [ours].
 */
export const TRAINING_PRESETS = {
  paper: { learningRate: 5e-6, batchSize: 16, maxLength: 2048 },
  tiny: { learningRate: 3e-3, batchSize: 8, maxLength: 256 },
} as const;

/**
 * Sequences per optimizer step over all processes when `globalBatchSize` is not set: the paper's 16 per GPU on 8 GPUs
 * [repo]; the builtin tiny model takes one batch per process per step (no accumulation) [ours].
 */
export const GLOBAL_BATCH_PRESETS = { paper: 128, tiny: undefined } as const;

/** The one model trained from scratch, which gets the `tiny` preset; the builtin SmolLM2 is pretrained. */
export const TINY_MODEL = 'builtin:tiny-llama';

/** Largest dataset row accepted by default: far above any real instruction, far below what would be sent whole to an LLM. */
export const MAX_ROW_BYTES = 1024 * 1024;
