// A workflow for tests: the pipeline's scoring with `scorer.mode: "batch"` (its Batch API rounds, then the scoring
// step) without the rest of the pipeline.
import { proxyActivities } from '@temporalio/workflow';
import type { createCpuActivities } from '../../activities/cpu';
import type { ScoreInput, ScoreResult } from '../../activities/types';
import type { BatchCollected } from '../../activities/llm/batch-rounds';
import { answerInBatches } from '../../workflows/batch-answers';

type CpuActivities = ReturnType<typeof createCpuActivities>;

const cpuAs = (name: string) =>
  proxyActivities<CpuActivities>({
    startToCloseTimeout: '2 minutes',
    activityId: name,
    retry: { maximumAttempts: 2, initialInterval: '1 second' },
  });

export async function batchScoring(
  input: ScoreInput,
  waiting: { batchPollInterval: string; batchResubmits: number },
): Promise<{ rounds: BatchCollected[]; score: ScoreResult }> {
  const rounds = await answerInBatches('score', cpuAs, input, waiting);
  const score = await cpuAs('score').scoreDifficulty(input);
  return { rounds, score };
}
