// Workflow-safe (types only): what the workflow hands every generateAnswers call. Kept out of workflows/index.ts,
// whose every export would become a workflow type.
import type { GenerateInput, PreparedBenchmark, StepRef } from '../activities/types';
import type { ResolvedInput, ServingOptions } from '../common/settings/schema';

/** The settings every model's generation shares; each call adds the model's `name` and `modelUri`. */
export function generationSettings(
  cfg: ResolvedInput,
  ref: StepRef,
  benchmarks: PreparedBenchmark[],
): Omit<GenerateInput, 'name' | 'modelUri'> {
  return {
    ...ref,
    benchmarks,
    maxLength: cfg.evaluation.maxLength,
    maxNewTokens: cfg.evaluation.maxNewTokens,
    progressTimeout: cfg.training.progressTimeout,
    ...(cfg.evaluation.answerExtraction === 'paper' && { answerExtraction: 'paper' as const }),
    ...(cfg.evaluation.assistantMarker === 'training' && { assistantMarker: 'training' as const }),
    // Conversations are prompted in the template their models were trained with.
    ...(cfg.training.conversationTemplate !== undefined && {
      conversationTemplate: cfg.training.conversationTemplate,
    }),
    // ajv filled the defaults of a given `serving`.
    ...(cfg.evaluation.serving !== undefined && { serving: cfg.evaluation.serving as ServingOptions }),
  };
}
