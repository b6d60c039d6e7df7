// Only the activity types: activity code must never reach the workflow bundle.
import type { createCpuActivities } from '../activities/cpu';
import type { ScoreInput, ScoreResult } from '../activities/types';

type CpuActivities = ReturnType<typeof createCpuActivities>;

/**
 * `scorer.shardRows`: the plan reads the dataset once; a dataset above the shard size is then scored one shard per
 * activity, all at once on the CPU queue (as many at a time as workers take), and the shards are merged into the
 * score step's usual outputs. History holds the plan's few numbers and each shard's counts, never rows.
 */
export async function scoreInShards(
  cpuAs: (
    name: string,
  ) => Pick<CpuActivities, 'planScoreShards' | 'scoreShard' | 'mergeScoreShards' | 'scoreDifficulty'>,
  input: ScoreInput,
  shardRows: number,
): Promise<ScoreResult> {
  const plan = await cpuAs('score-plan').planScoreShards({ ...input, shardRows });
  if (!plan.sharded) return cpuAs('score').scoreDifficulty(input);
  await Promise.all(
    Array.from({ length: plan.shards }, (_, shard) =>
      cpuAs(`score-shard-${shard + 1}`).scoreShard({ ...input, plan, shard }),
    ),
  );
  return cpuAs('score').mergeScoreShards({ ...input, plan });
}
