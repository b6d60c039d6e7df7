// Rules computed from settings rather than stored in them. Workflow-safe: the workflow imports `optimizerSteps`,
// so this file pulls in no schema library at run time.
import { TINY_MODEL, TRAINING_PRESETS } from './constants';
import type { ResolvedTraining, TrainingOptions } from './schema';

/** Fills the four training settings whose defaults depend on the base model (see TRAINING_PRESETS). */
export function resolveTrainingDefaults(t: TrainingOptions): ResolvedTraining {
  const preset = t.baseModel === TINY_MODEL ? TRAINING_PRESETS.tiny : TRAINING_PRESETS.paper;
  return {
    ...t,
    learningRate: t.learningRate ?? preset.learningRate,
    batchSize: t.batchSize ?? preset.batchSize,
    gradientAccumulation: t.gradientAccumulation ?? preset.gradientAccumulation,
    maxLength: t.maxLength ?? preset.maxLength,
  };
}

/** Optimizer steps the HF Trainer takes for `rows` rows: ceil(ceil(rows / batch) / accumulation) per epoch. */
export function optimizerSteps(
  rows: number,
  t: Pick<ResolvedTraining, 'batchSize' | 'gradientAccumulation' | 'epochs'>,
): number {
  const perEpoch = Math.ceil(Math.ceil(rows / t.batchSize) / t.gradientAccumulation);
  return Math.max(1, perEpoch) * t.epochs;
}

/** Run ids become store key prefixes: nothing that could leave the run's prefix. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export function runIdProblem(runId: string): string | undefined {
  if (!RUN_ID_PATTERN.test(runId) || runId.includes('..')) {
    return `runId "${runId}" must be 1-128 characters of letters, digits, '.', '_' or '-', start with a letter or digit, and contain no ".."`;
  }
  return undefined;
}
