export * from './start-run';
export { describeProgress, followProgress } from './progress-display';
export type { PipelineInput } from '../common/input';
