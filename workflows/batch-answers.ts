import { proxyActivities } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { BatchCollected, BatchSubmitted } from '../activities/llm/batch-rounds';
import type { EvaluateInput, ScoreInput } from '../activities/types';
import { NON_RETRYABLE_FAILURES } from '../common/failures';
import type { CpuActivities } from './step-activities';

/** A step's Batch API activities, each named for the Web UI by its round. */
interface BatchSteps {
  submit: (round: number) => Promise<BatchSubmitted>;
  collect: (round: number, batchId: string) => Promise<BatchCollected>;
}

interface BatchWaiting {
  batchPollInterval: string;
  /** Rounds after the first, for what failed, expired or did not parse. */
  batchResubmits: number;
}

/**
 * The wait for a round's batches: one activity that throws while a batch runs, retried every `pollInterval`
 * (samples-typescript `polling/infrequent`). The server keeps the retries, so the history holds one activity however
 * many looks a batch takes (up to 24 hours), and a worker restart in between costs nothing.
 */
const waitAs = (name: string, pollInterval: Duration): Pick<CpuActivities, 'waitForBatch'> =>
  proxyActivities<CpuActivities>({
    summary: name,
    activityId: name,
    startToCloseTimeout: '10 minutes',
    // A batch ends within its 24-hour window (completed, failed or expired); an endpoint that never says so ends here.
    scheduleToCloseTimeout: '3 days',
    retry: {
      initialInterval: pollInterval,
      backoffCoefficient: 1,
      maximumInterval: pollInterval,
      nonRetryableErrorTypes: NON_RETRYABLE_FAILURES,
    },
  });

/**
 * Batch API rounds of a step ('score' or 'evaluate'): submit what the cache lacks, wait until the batch is finished,
 * collect its answers into the cache, and submit again what is left, up to `batchResubmits` times. The step that
 * follows asks online only what the rounds left. `setting` (`input.scorer.mode`…) is named in the activities' messages.
 */
async function answerInBatches(
  step: string,
  setting: string,
  steps: BatchSteps,
  waiting: BatchWaiting,
): Promise<BatchCollected[]> {
  const rounds: BatchCollected[] = [];
  for (let round = 0; round <= waiting.batchResubmits; round++) {
    const submitted = await steps.submit(round);
    if (!submitted.batchId) break;
    // A round above the endpoint's caps on one batch was sent as several, waited for and collected together.
    const ref = { batchId: submitted.batchId, ...(submitted.batchIds && { batchIds: submitted.batchIds }), setting };
    await waitAs(`${step}-batch-${round}-wait`, waiting.batchPollInterval as Duration).waitForBatch(ref);
    const collected = await steps.collect(round, submitted.batchId);
    rounds.push(collected);
    if (collected.pending === 0) break;
  }
  return rounds;
}

/** `evaluation.mode: "batch"`: fills the judge cache through the Batch API before evaluate runs. */
export function judgeInBatches(
  cpuAs: (name: string) => Pick<CpuActivities, 'submitJudgeBatch' | 'collectJudgeBatch'>,
  input: EvaluateInput,
  waiting: BatchWaiting,
): Promise<BatchCollected[]> {
  return answerInBatches(
    'evaluate',
    'input.evaluation.mode',
    {
      submit: (round) => cpuAs(`evaluate-batch-${round}`).submitJudgeBatch({ ...input, round }),
      collect: (round, batchId) =>
        cpuAs(`evaluate-batch-${round}-collect`).collectJudgeBatch({ ...input, round, batchId }),
    },
    waiting,
  );
}

/** `scorer.mode: "batch"`: fills the scoring cache through the Batch API before scoreDifficulty runs. */
export function scoreInBatches(
  cpuAs: (name: string) => Pick<CpuActivities, 'submitScoreBatch' | 'collectScoreBatch'>,
  input: ScoreInput,
  waiting: BatchWaiting,
): Promise<BatchCollected[]> {
  return answerInBatches(
    'score',
    'input.scorer.mode',
    {
      submit: (round) => cpuAs(`score-batch-${round}`).submitScoreBatch({ ...input, round }),
      collect: (round, batchId) =>
        cpuAs(`score-batch-${round}-collect`).collectScoreBatch({ ...input, round, batchId }),
    },
    waiting,
  );
}
