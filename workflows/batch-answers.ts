import { proxyActivities } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { BatchCollected } from '../activities/llm/batch-rounds';
import type { EvaluateInput, ScoreInput } from '../activities/types';
import type { ResolvedInput } from '../common/settings/schema';
import { retrying, type CpuActivities } from './step-activities';

/** Each step's setting (named in the activities' messages) and its submit and collect activities. */
const BATCH_STEPS = {
  score: { setting: 'input.scorer.mode', submit: 'submitScoreBatch', collect: 'collectScoreBatch' },
  evaluate: { setting: 'input.evaluation.mode', submit: 'submitJudgeBatch', collect: 'collectJudgeBatch' },
} as const;
type BatchActivities = Pick<CpuActivities, (typeof BATCH_STEPS)[keyof typeof BATCH_STEPS]['submit' | 'collect']>;

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
    retry: retrying({ initialInterval: pollInterval, backoffCoefficient: 1, maximumInterval: pollInterval }),
  });

/**
 * Batch API rounds of a step: submit what the cache lacks, wait until the batch is finished, collect its answers into
 * the cache, and submit again what is left, up to `batchResubmits` times. The step that follows asks online only what
 * the rounds left: `scorer.mode: "batch"` fills the scoring cache before scoreDifficulty runs, `evaluation.mode:
 * "batch"` the judge cache before evaluate runs. `input` is the step's own (ScoreInput or EvaluateInput).
 */
export async function answerInBatches(
  step: keyof typeof BATCH_STEPS,
  cpuAs: (name: string) => BatchActivities,
  input: ScoreInput | EvaluateInput,
  waiting: Pick<ResolvedInput['scorer'], 'batchPollInterval' | 'batchResubmits'>,
): Promise<BatchCollected[]> {
  const { setting, submit, collect } = BATCH_STEPS[step];
  const rounds: BatchCollected[] = [];
  for (let round = 0; round <= waiting.batchResubmits; round++) {
    const submitted = await cpuAs(`${step}-batch-${round}`)[submit]({ ...input, round } as never);
    if (!submitted.batchId) break;
    // A round above the endpoint's caps on one batch was sent as several, waited for and collected together.
    const ref = { batchId: submitted.batchId, ...(submitted.batchIds && { batchIds: submitted.batchIds }), setting };
    await waitAs(`${step}-batch-${round}-wait`, waiting.batchPollInterval as Duration).waitForBatch(ref);
    const { batchId } = submitted;
    const collected = await cpuAs(`${step}-batch-${round}-collect`)[collect]({ ...input, round, batchId } as never);
    rounds.push(collected);
    if (collected.pending === 0) break;
  }
  return rounds;
}
