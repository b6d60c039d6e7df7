import type { PipelineInput, ResolvedInput } from '../common/settings/schema';
import type { ActivityDeps } from './deps';
import { withTypedFailures } from '../common/failures';
import { Context } from '@temporalio/activity';
import { allowedLocation, openStore } from '../store';
import { checkInput, inputObjects, type CheckProgress } from './validate/check-input';
import { claimRun } from './artifacts/run-claim';
import { unpolledQueues } from '../client/queue-pollers';
import { activityOf, whileHeartbeating } from './heartbeat';
import { evaluate } from './evaluate/evaluate';
import { prepareBenchmarks } from './benchmarks/prepare-benchmarks';
import { resolvePipelineInput } from './validate/resolve-input';
import { scoreDifficulty } from './score/score-difficulty';
import { mergeScoreShards, planScoreShards, scoreShard } from './score/score-shards';
import { collectScoreBatch, submitScoreBatch } from './score/batch-scoring';
import { waitForBatch, type BatchRef } from './llm/batch-rounds';
import { collectJudgeBatch, submitJudgeBatch } from './evaluate/batch-judging';
import { scoreAgreement } from './score/score-agreement';
import { segmentStages } from './segment/segment-stages';
import { exportStages } from './export/export-stages';
import { writeReport } from './report/write-report';
import { fetchHubDataset } from './validate/hub-dataset';
import { segmentRandomControl } from './segment/control-orderings';

/** Activities of the CPU worker: light on compute, heavy on I/O and LLM calls. */
export const createCpuActivities = (deps: ActivityDeps) => {
  const act = activityOf(deps);
  return {
    resolveInput: async (input: PipelineInput, workflowId: string): Promise<ResolvedInput> =>
      withTypedFailures(async () => {
        const cfg = resolvePipelineInput(input, workflowId, deps.env);
        // The local locations the CPU worker opens, refused before the first paid request. Model directories are the
        // GPU worker's to judge, with its own list, when it loads them.
        allowedLocation(cfg.store, deps.fileRoots, 'input.store');
        for (const { field, uri } of inputObjects(cfg)) allowedLocation(uri, deps.fileRoots, field);
        return cfg;
      }),
    // The check `pift validate` makes, every row read, before the first paid request. The CPU worker may not share
    // the GPU worker's disk: local model directories are checked by checkModel there. Only what the workflow needs
    // goes into history; the list of checks is for the CLI's `validate`.
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
          () => checkInput(deps, cfg, { localModelDirs: false, progress }),
        );
        return { gpuCheckWait };
      }),
    /** Whether a GPU worker polls `queue` (fresh pollers), however busy: tells a busy queue from one nobody serves. */
    gpuWorkerPolls: (queue: string) =>
      withTypedFailures(
        async () => (await unpolledQueues(Context.current().client, [{ queue, kind: 'gpu' }])).length === 0,
      ),
    // Hub datasets are read once with the `datasets` library into the run's store; the run then reads that file.
    fetchHubDataset: act(fetchHubDataset, () => ({ step: 'dataset' })),
    scoreDifficulty: act(scoreDifficulty),
    // scorer.shardRows: a dataset above the shard size is planned, scored one shard per activity, then merged.
    planScoreShards: act(planScoreShards),
    scoreShard: act(scoreShard),
    mergeScoreShards: act(mergeScoreShards),
    // scorer.mode "batch": Batch API rounds that fill the answer cache before scoreDifficulty runs.
    submitScoreBatch: act(submitScoreBatch, (input) => ({ step: 'score-batch', round: input.round })),
    waitForBatch: act((d, ref: BatchRef) => waitForBatch(d.env, ref)),
    collectScoreBatch: act(collectScoreBatch, (input) => ({ step: 'score-batch', round: input.round })),
    /** With `scorer.compareWith`: the two scorers' rank agreement and histograms. */
    scoreAgreement: act(scoreAgreement, () => ({ step: 'score/agreement' })),
    segmentStages: act(segmentStages, () => ({ step: 'segment' })),
    exportStages: act(exportStages, () => ({ step: 'export' })),
    segmentRandomControl: act(segmentRandomControl, () => ({ step: 'controls/random' })),
    prepareBenchmarks: act(prepareBenchmarks, () => ({ step: 'benchmarks' })),
    evaluate: act(evaluate),
    // evaluation.mode "batch": Batch API rounds that fill the judge cache before evaluate runs.
    submitJudgeBatch: act(submitJudgeBatch, (input) => ({ step: 'evaluate-batch', round: input.round })),
    collectJudgeBatch: act(collectJudgeBatch, (input) => ({ step: 'evaluate-batch', round: input.round })),
    writeReport: act(writeReport),
  };
};
