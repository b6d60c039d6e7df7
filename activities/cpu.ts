import type { PipelineInput, ResolvedInput } from '../common/input';
import type { ActivityDeps } from './deps';
import { withDataErrorsAsFailures } from './failures';
import { whileHeartbeating } from './heartbeat';
import { evaluate } from './evaluate/evaluate';
import { prepareBenchmarks } from './benchmarks/prepare-benchmarks';
import { resolvePipelineInput } from './validate/resolve-input';
import { scoreDifficulty } from './score/score-difficulty';
import { segmentStages } from './segment/segment-stages';
import type { EvaluateInput, PrepareBenchmarksInput, ScoreInput, SegmentInput } from './types';

/** Activities of the CPU worker: light on compute, heavy on I/O and LLM calls. */
export const createCpuActivities = (deps: ActivityDeps) => ({
  resolveInput: async (input: PipelineInput, workflowId: string): Promise<ResolvedInput> =>
    withDataErrorsAsFailures(async () => resolvePipelineInput(input, workflowId, deps.env)),
  scoreDifficulty: (input: ScoreInput) => withDataErrorsAsFailures(() => scoreDifficulty(deps, input)),
  segmentStages: (input: SegmentInput) =>
    withDataErrorsAsFailures(() =>
      whileHeartbeating(
        () => ({ step: 'segment' }),
        () => segmentStages(deps, input),
      ),
    ),
  prepareBenchmarks: (input: PrepareBenchmarksInput) =>
    withDataErrorsAsFailures(() =>
      whileHeartbeating(
        () => ({ step: 'benchmarks' }),
        () => prepareBenchmarks(deps, input),
      ),
    ),
  evaluate: (input: EvaluateInput) => withDataErrorsAsFailures(() => evaluate(deps, input)),
});
