import type { PipelineInput, ResolvedInput } from '../common/input';
import type { ActivityDeps } from './deps';
import { withTypedFailures } from '../common/failures';
import { Context } from '@temporalio/activity';
import { checkRunLocations, openStore } from '../store';
import { claimRun } from './artifacts/run-claim';
import { unpolledQueues } from '../client/queue-pollers';
import { whileHeartbeating } from './heartbeat';
import { evaluate } from './evaluate/evaluate';
import { prepareBenchmarks } from './benchmarks/prepare-benchmarks';
import { resolvePipelineInput } from './validate/resolve-input';
import { checkInput, type CheckProgress } from './validate/check-input';
import { scoreDifficulty } from './score/score-difficulty';
import {
  mergeScoreShards,
  planScoreShards,
  scoreShard,
  type ScoreMergeInput,
  type ScoreShardInput,
  type ScoreShardsInput,
} from './score/score-shards';
import {
  collectScoreBatch,
  submitScoreBatch,
  type ScoreBatchInput,
  type ScoreCollectInput,
} from './score/batch-scoring';
import { waitForBatch, type BatchRef } from './llm/batch-rounds';
import {
  collectJudgeBatch,
  submitJudgeBatch,
  type JudgeBatchInput,
  type JudgeCollectInput,
} from './evaluate/batch-judging';
import { scoreAgreement, type ScoreAgreementInput } from './score/score-agreement';
import { segmentStages } from './segment/segment-stages';
import { exportStages } from './export/export-stages';
import { writeReport } from './report/write-report';
import { fetchHubDataset, type FetchHubDatasetInput } from './validate/hub-dataset';
import { segmentRandomControl, type RandomControlInput } from './segment/control-orderings';
import type { EvaluateInput, ExportInput, PrepareBenchmarksInput, ScoreInput, SegmentInput, StepRef } from './types';

/** Activities of the CPU worker: light on compute, heavy on I/O and LLM calls. */
export const createCpuActivities = (deps: ActivityDeps) => ({
  resolveInput: async (input: PipelineInput, workflowId: string): Promise<ResolvedInput> =>
    withTypedFailures(async () => {
      const cfg = resolvePipelineInput(input, workflowId, deps.env);
      checkRunLocations(cfg, deps.fileRoots);
      return cfg;
    }),
  // The check `pift validate` makes, every row read, before the first paid request. The CPU worker may not share the
  // GPU worker's disk: local model directories are checked by checkModel there. Only what the workflow needs goes
  // into history; the list of checks is for the CLI's `validate`.
  preflight: (cfg: ResolvedInput) =>
    withTypedFailures(async () => {
      // First, before anything is asked of any endpoint: one run id, one workflow, however the run was started.
      const execution = Context.current().info.workflowExecution;
      if (execution) {
        const store = openStore(cfg.store, deps.env, { probe: 'fail-fast' });
        await claimRun(store, cfg.runId, { workflowId: execution.workflowId, workflowRunId: execution.runId });
      }
      const progress: CheckProgress = { rows: 0 };
      const { gpuCheckWait } = await whileHeartbeating(
        () => ({ step: 'preflight', checking: progress.file, rows: progress.rows }),
        () => checkInput(deps, cfg, { localModelDirs: false, fileRoots: deps.fileRoots, progress }),
      );
      return { gpuCheckWait };
    }),
  /** Whether a GPU worker polls `queue` (fresh pollers), however busy: tells a busy queue from one nobody serves. */
  gpuWorkerPolls: (queue: string) =>
    withTypedFailures(
      async () => (await unpolledQueues(Context.current().client, [{ queue, kind: 'gpu' }])).length === 0,
    ),
  // Hub datasets are read once with the `datasets` library into the run's store; the run then reads that file.
  fetchHubDataset: (input: FetchHubDatasetInput) =>
    withTypedFailures(() =>
      whileHeartbeating(
        () => ({ step: 'dataset' }),
        () => fetchHubDataset(deps, input),
      ),
    ),
  scoreDifficulty: (input: ScoreInput) => withTypedFailures(() => scoreDifficulty(deps, input)),
  // scorer.shardRows: a dataset above the shard size is planned, scored one shard per activity, then merged.
  planScoreShards: (input: ScoreShardsInput) => withTypedFailures(() => planScoreShards(deps, input)),
  scoreShard: (input: ScoreShardInput) => withTypedFailures(() => scoreShard(deps, input)),
  mergeScoreShards: (input: ScoreMergeInput) => withTypedFailures(() => mergeScoreShards(deps, input)),
  // scorer.mode "batch": Batch API rounds that fill the answer cache before scoreDifficulty runs.
  submitScoreBatch: (input: ScoreBatchInput) =>
    withTypedFailures(() =>
      whileHeartbeating(
        () => ({ step: 'score-batch', round: input.round }),
        () => submitScoreBatch(deps, input),
      ),
    ),
  waitForBatch: (ref: BatchRef) => withTypedFailures(() => waitForBatch(deps.env, ref)),
  collectScoreBatch: (input: ScoreCollectInput) =>
    withTypedFailures(() =>
      whileHeartbeating(
        () => ({ step: 'score-batch', round: input.round }),
        () => collectScoreBatch(deps, input),
      ),
    ),
  /** With `scorer.compareWith`: the two scorers' rank agreement and histograms. */
  scoreAgreement: (input: ScoreAgreementInput) =>
    withTypedFailures(() =>
      whileHeartbeating(
        () => ({ step: 'score/agreement' }),
        () => scoreAgreement(deps, input),
      ),
    ),
  segmentStages: (input: SegmentInput) =>
    withTypedFailures(() =>
      whileHeartbeating(
        () => ({ step: 'segment' }),
        () => segmentStages(deps, input),
      ),
    ),
  exportStages: (input: ExportInput) =>
    withTypedFailures(() =>
      whileHeartbeating(
        () => ({ step: 'export' }),
        () => exportStages(deps, input),
      ),
    ),
  segmentRandomControl: (input: RandomControlInput) =>
    withTypedFailures(() =>
      whileHeartbeating(
        () => ({ step: 'controls/random' }),
        () => segmentRandomControl(deps, input),
      ),
    ),
  prepareBenchmarks: (input: PrepareBenchmarksInput) =>
    withTypedFailures(() =>
      whileHeartbeating(
        () => ({ step: 'benchmarks' }),
        () => prepareBenchmarks(deps, input),
      ),
    ),
  evaluate: (input: EvaluateInput) => withTypedFailures(() => evaluate(deps, input)),
  // evaluation.mode "batch": Batch API rounds that fill the judge cache before evaluate runs.
  submitJudgeBatch: (input: JudgeBatchInput) =>
    withTypedFailures(() =>
      whileHeartbeating(
        () => ({ step: 'evaluate-batch', round: input.round }),
        () => submitJudgeBatch(deps, input),
      ),
    ),
  collectJudgeBatch: (input: JudgeCollectInput) =>
    withTypedFailures(() =>
      whileHeartbeating(
        () => ({ step: 'evaluate-batch', round: input.round }),
        () => collectJudgeBatch(deps, input),
      ),
    ),
  writeReport: (input: StepRef) => withTypedFailures(() => writeReport(deps, input)),
});
