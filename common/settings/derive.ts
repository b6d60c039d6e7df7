// Rules computed from settings rather than stored in them. Workflow-safe: the workflow imports `optimizerSteps`,
// so this file pulls in no schema library at run time.
import { badSetting, type InvalidDataError } from '../failures';
import { GLOBAL_BATCH_PRESETS, TINY_MODEL, TRAINING_PRESETS } from './constants';
import type { ResolvedInput, ResolvedTraining, TrainingOptions } from './schema';

/**
 * The batch settings with the base model's presets filled in (the paper's for real models, the tiny model's for the
 * builtin tiny model): sequences per micro-batch step over all processes, and per optimizer step.
 */
function batchPlan(t: TrainingOptions) {
  const tiny = t.baseModel === TINY_MODEL;
  const preset = tiny ? TRAINING_PRESETS.tiny : TRAINING_PRESETS.paper;
  const batchSize = t.batchSize ?? preset.batchSize;
  const perStep = batchSize * (t.processes ?? 1);
  const global = t.globalBatchSize ?? (tiny ? GLOBAL_BATCH_PRESETS.tiny : GLOBAL_BATCH_PRESETS.paper) ?? perStep;
  return { preset, batchSize, perStep, global };
}

/**
 * Why the batch settings cannot be met, as bad input naming the setting, or undefined. Gradient accumulation is derived
 * as globalBatchSize / (batchSize × processes) unless set explicitly; then a globalBatchSize set too must agree.
 */
export function batchProblem(t: TrainingOptions): InvalidDataError | undefined {
  const { batchSize, perStep, global } = batchPlan(t);
  const product = `batchSize × processes = ${batchSize} × ${t.processes ?? 1} = ${perStep}`;
  if (t.gradientAccumulation !== undefined) {
    if (t.globalBatchSize === undefined || t.globalBatchSize === perStep * t.gradientAccumulation) return undefined;
    return badSetting(
      'input.training.globalBatchSize',
      `${t.globalBatchSize} disagrees with gradientAccumulation ${t.gradientAccumulation} × ${product}; ` +
        'set only one of the two',
    );
  }
  if (global % perStep === 0) return undefined;
  return badSetting(
    'input.training.globalBatchSize',
    `${global}${t.globalBatchSize === undefined ? ' (the default)' : ''} is not a multiple of ${product}; change ` +
      'globalBatchSize or batchSize, or set gradientAccumulation',
  );
}

/** Fills the training settings whose defaults depend on the base model (see TRAINING_PRESETS); see batchProblem. */
export function resolveTrainingDefaults(t: TrainingOptions): ResolvedTraining {
  const { preset, batchSize, perStep, global } = batchPlan(t);
  const gradientAccumulation = t.gradientAccumulation ?? global / perStep;
  return {
    ...t,
    learningRate: t.learningRate ?? preset.learningRate,
    batchSize,
    globalBatchSize: perStep * gradientAccumulation,
    gradientAccumulation,
    maxLength: t.maxLength ?? preset.maxLength,
  };
}

/**
 * Optimizer steps the HF Trainer takes for `rows` rows: ceil(ceil(rows / batch) / (accumulation × processes)) per
 * epoch (the micro-batches are dealt out to the processes in turn). `processes` is absent in runs started before it
 * existed, which all ran one process.
 */
export function optimizerSteps(
  rows: number,
  t: Pick<ResolvedTraining, 'batchSize' | 'gradientAccumulation' | 'epochs'> & { processes?: number },
): number {
  const perEpoch = Math.ceil(Math.ceil(rows / t.batchSize) / (t.gradientAccumulation * (t.processes ?? 1)));
  return Math.max(1, perEpoch) * t.epochs;
}

/**
 * The held-out split segmentation takes for evaluation: a share of the rows only when the run evaluates and names no
 * benchmark. `pift validate` counts what it leaves to train on with the same rule.
 */
export function heldoutSplit(cfg: Pick<ResolvedInput, 'training' | 'baseline' | 'evaluation'>) {
  const { benchmarks, heldoutFraction, heldoutMax } = cfg.evaluation;
  const evaluates = cfg.training.mode !== 'export-only' && cfg.baseline.mode !== 'skip';
  return { heldoutFraction: evaluates && benchmarks.length === 0 ? heldoutFraction : 0, heldoutMax };
}

/** Whether the run's answers come from a server (`evaluation.serving`): only where the models are evaluated at all. */
export const servesModels = (cfg: Pick<ResolvedInput, 'baseline' | 'evaluation'>): boolean =>
  cfg.evaluation.serving !== undefined && cfg.baseline.mode !== 'skip';

/** Rows a held-out split takes of `rows`. */
export const heldoutOf = (rows: number, split: { heldoutFraction: number; heldoutMax: number }): number =>
  Math.min(split.heldoutMax, Math.floor(rows * split.heldoutFraction));

/** Run ids become store key prefixes: nothing that could leave the run's prefix. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export function runIdProblem(runId: string): string | undefined {
  if (!RUN_ID_PATTERN.test(runId) || runId.includes('..')) {
    return `runId "${runId}" must be 1-128 characters of letters, digits, '.', '_' or '-', start with a letter or digit, and contain no ".."`;
  }
  return undefined;
}
