// The workflow of `npm run bench:scale`: the pipeline's scoring and segmentation steps, with the pipeline's activity
// options, and nothing else (no preflight, no GPU queue), so a CPU worker can be measured on them alone.
import { proxyActivities } from '@temporalio/workflow';
import type { createCpuActivities } from '../activities/cpu';
import type { ScoreInput, ScoreResult, SegmentInput, SegmentResult } from '../activities/types';

const { scoreDifficulty, segmentStages } = proxyActivities<ReturnType<typeof createCpuActivities>>({
  startToCloseTimeout: '1 day',
  heartbeatTimeout: '2 minutes',
  retry: { maximumAttempts: 1 },
});

export async function benchScore(input: ScoreInput): Promise<ScoreResult> {
  return scoreDifficulty(input);
}

export async function benchSegment(input: SegmentInput): Promise<SegmentResult> {
  return segmentStages(input);
}
