export * from './start-run';
export { describeProgress, followProgress, runningWork, workProgress, type WorkProgress } from './progress-display';
export { runProgress, type RunProgress, type RunningActivity } from './run-progress';
export { runStatus, formatStatus, failureHint, runFailureOf, type RunStatus, type RunFailure } from './run-status';
export { listRuns, formatRuns, type RunSummary } from './list-runs';
export type { PipelineInput } from '../common/settings/schema';
