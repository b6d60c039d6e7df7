// The workflow of `npm run bench:scale`: the pipeline's scoring and segmentation steps, with the pipeline's activity
// options, and nothing else (no preflight, no GPU queue), so a CPU worker can be measured on them alone.
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import { shardQueue } from '../common/constants';
import type { createCpuActivities } from '../activities/cpu';
import type { ScoreInput, ScoreResult, SegmentInput, SegmentResult } from '../activities/types';
import { scoreInShards } from '../workflows/score-shards';

const cpu = proxyActivities<ReturnType<typeof createCpuActivities>>({
  startToCloseTimeout: '1 day',
  heartbeatTimeout: '2 minutes',
  retry: { maximumAttempts: 1 },
});
const { scoreDifficulty, segmentStages } = cpu;
const shards = () =>
  proxyActivities<ReturnType<typeof createCpuActivities>>({
    startToCloseTimeout: '1 day',
    heartbeatTimeout: '2 minutes',
    retry: { maximumAttempts: 1 },
    taskQueue: shardQueue(workflowInfo().taskQueue),
  });

export async function benchScore(input: ScoreInput): Promise<ScoreResult> {
  return scoreDifficulty(input);
}

/** Scoring in shards of `shardRows` (scorer.shardRows), as the pipeline runs it. */
export async function benchScoreSharded(input: ScoreInput, shardRows: number): Promise<ScoreResult> {
  return scoreInShards(() => cpu, input, shardRows, shards);
}

export async function benchSegment(input: SegmentInput): Promise<SegmentResult> {
  return segmentStages(input);
}
