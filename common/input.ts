// The workflow input's types and derived rules, re-exported from common/settings/ (where the one definition lives)
// so existing imports stay stable. Types only and plain functions: nothing here loads the schema library, which
// keeps the workflow bundle small.
export type { BenchmarkRef, PipelineInput, ResolvedInput, ServingOptions } from './settings/schema';
export { heldoutSplit, optimizerSteps, resolveTrainingDefaults, servesModels } from './settings/derive';
