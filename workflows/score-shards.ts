import type { ShardedPlan } from '../activities/score/score-shards';
import type { ScoreInput, ScoreResult } from '../activities/types';
import type { CpuActivities } from './step-activities';

type ActivitiesAs<K extends keyof CpuActivities> = (name: string) => Pick<CpuActivities, K>;

/**
 * `scorer.shardRows`: the plan reads the dataset once; a dataset above the shard size is then scored one shard per
 * activity, all scheduled at once, and the shards are merged into the score step's usual outputs. History holds the
 * plan's few numbers and each shard's counts, never rows.
 *
 * `shardsAs` names where the shards go: the CPU workers' shard queue, where each worker takes only a few at a time
 * (PIFT_SCORE_SHARD_SLOTS).
 */
export async function scoreInShards(
  cpuAs: ActivitiesAs<'planScoreShards' | 'scoreShard' | 'mergeScoreShards' | 'scoreDifficulty'>,
  input: ScoreInput,
  shardRows: number,
  shardsAs: ActivitiesAs<'scoreShard'>,
): Promise<ScoreResult> {
  const planned = await cpuAs('score-plan').planScoreShards({ ...input, shardRows });
  if (!planned.sharded) return cpuAs('score').scoreDifficulty(input);
  // Each shard gets its own estimate, not the whole list: history grows with the shards, not with their square.
  const { shardPromptTokens, ...plan }: ShardedPlan = planned;
  await Promise.all(
    Array.from({ length: plan.shards }, (_, shard) =>
      shardsAs(`score-shard-${shard + 1}`).scoreShard({
        ...input,
        plan,
        shard,
        ...(shardPromptTokens && { promptTokens: shardPromptTokens[shard] }),
      }),
    ),
  );
  return cpuAs('score').mergeScoreShards({ ...input, plan });
}
