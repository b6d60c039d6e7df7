import { sleep } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
// Only the activity types: activity code must never reach the workflow bundle.
import type { createCpuActivities } from '../activities/cpu';
import type { BatchCollected, BatchPolled, BatchRef, BatchSubmitted } from '../activities/llm/batch-rounds';
import type { EvaluateInput, ScoreInput } from '../activities/types';

type CpuActivities = ReturnType<typeof createCpuActivities>;

/** A step's Batch API activities, each named for the Web UI by its round. */
export interface BatchSteps {
  submit: (round: number) => Promise<BatchSubmitted>;
  poll: (ref: BatchRef, round: number, look: number) => Promise<BatchPolled>;
  collect: (round: number, batchId: string) => Promise<BatchCollected>;
}

export interface BatchWaiting {
  /** `input.scorer.mode` or `input.evaluation.mode`, named in the activities' messages. */
  setting: string;
  pollInterval: Duration;
  /** Rounds after the first, for what failed, expired or did not parse. */
  resubmits: number;
}

/**
 * Batch API rounds: submit what the cache lacks, look at the batch between durable timers until it is finished (a
 * batch takes up to 24 hours; a worker restart in between costs nothing), collect its answers into the cache, and
 * submit again what is left, up to `resubmits` times. The step that follows asks online only what the rounds left.
 */
export async function answerInBatches(steps: BatchSteps, opts: BatchWaiting): Promise<BatchCollected[]> {
  const rounds: BatchCollected[] = [];
  for (let round = 0; round <= opts.resubmits; round++) {
    const submitted = await steps.submit(round);
    if (!submitted.batchId) break;
    // A round above the endpoint's caps on one batch was sent as several, polled and collected together.
    const ref = {
      batchId: submitted.batchId,
      ...(submitted.batchIds && { batchIds: submitted.batchIds }),
      setting: opts.setting,
    };
    for (let look = 0; !(await steps.poll(ref, round, look)).done; look++) await sleep(opts.pollInterval);
    const collected = await steps.collect(round, submitted.batchId);
    rounds.push(collected);
    if (collected.pending === 0) break;
  }
  return rounds;
}

/** `evaluation.mode: "batch"`: fills the judge cache through the Batch API before evaluate runs. */
export function judgeInBatches(
  cpuAs: (name: string) => Pick<CpuActivities, 'submitJudgeBatch' | 'pollBatch' | 'collectJudgeBatch'>,
  input: EvaluateInput,
  waiting: { batchPollInterval: string; batchResubmits: number },
): Promise<BatchCollected[]> {
  return answerInBatches(
    {
      submit: (round) => cpuAs(`evaluate-batch-${round}`).submitJudgeBatch({ ...input, round }),
      poll: (ref, round, look) => cpuAs(`evaluate-batch-${round}-poll-${look}`).pollBatch(ref),
      collect: (round, batchId) =>
        cpuAs(`evaluate-batch-${round}-collect`).collectJudgeBatch({ ...input, round, batchId }),
    },
    {
      setting: 'input.evaluation.mode',
      pollInterval: waiting.batchPollInterval as Duration,
      resubmits: waiting.batchResubmits,
    },
  );
}

/** `scorer.mode: "batch"`: fills the scoring cache through the Batch API before scoreDifficulty runs. */
export function scoreInBatches(
  cpuAs: (name: string) => Pick<CpuActivities, 'submitScoreBatch' | 'pollBatch' | 'collectScoreBatch'>,
  input: ScoreInput,
  waiting: { batchPollInterval: string; batchResubmits: number },
): Promise<BatchCollected[]> {
  return answerInBatches(
    {
      submit: (round) => cpuAs(`score-batch-${round}`).submitScoreBatch({ ...input, round }),
      poll: (ref, round, look) => cpuAs(`score-batch-${round}-poll-${look}`).pollBatch(ref),
      collect: (round, batchId) =>
        cpuAs(`score-batch-${round}-collect`).collectScoreBatch({ ...input, round, batchId }),
    },
    {
      setting: 'input.scorer.mode',
      pollInterval: waiting.batchPollInterval as Duration,
      resubmits: waiting.batchResubmits,
    },
  );
}
