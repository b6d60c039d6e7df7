import type { ScoreInput, ScoreResult } from '../activities/types';
import { HUB_DATASET_PREFIX, SHARDABLE_SCORERS } from '../common/constants';
import type { ResolvedInput } from '../common/settings/schema';
import { answerInBatches } from './batch-answers';
import type { RunProgress } from './run-progress';
import { scoreInShards } from './score-shards';
import type { StepActivities } from './step-activities';

/**
 * The score step: a hub dataset is first materialized into the run's store at a recorded commit; Batch API rounds
 * (`scorer.mode: "batch"`) fill the answer cache; the rows are scored on the CPU workers (in shards with
 * `scorer.shardRows`) or, for IFD, by the base model on the GPU queue; `scorer.compareWith` scores them again.
 */
export async function scoreRows(cfg: ResolvedInput, acts: StepActivities, progress: RunProgress): Promise<ScoreResult> {
  const { cpuAs, gpuAs } = acts;
  const ref = { runId: cfg.runId, store: cfg.store };
  let dataset = cfg.dataset;
  if (dataset.startsWith(HUB_DATASET_PREFIX)) {
    progress.enter('dataset');
    const fetched = await cpuAs('dataset').fetchHubDataset({ ...ref, uri: dataset });
    progress.finish(`dataset@${fetched.revision}`);
    dataset = fetched.uri;
  }
  progress.enter('score');
  const input: ScoreInput = {
    ...ref,
    dataset,
    datasetFormat: cfg.datasetFormat,
    ...(cfg.datasetColumns ? { datasetColumns: cfg.datasetColumns } : {}),
    scorer: cfg.scorer,
    maxRowBytes: cfg.maxRowBytes,
  };
  if (cfg.scorer.mode === 'batch') {
    await answerInBatches('score', cpuAs, input, cfg.scorer);
    progress.finish('score-batch');
  }
  const { shardRows } = cfg.scorer;
  const score =
    cfg.scorer.kind === 'ifd'
      ? await gpuAs('score').scoreIfd({ ...input, ifd: ifdSettings(cfg) })
      : shardRows !== undefined && SHARDABLE_SCORERS.includes(cfg.scorer.kind)
        ? await scoreInShards(cpuAs, input, shardRows, acts.shardsAs)
        : await cpuAs('score').scoreDifficulty(input);
  progress.finish('score');
  return cfg.scorer.compareWith ? compareScores(cfg, acts, progress, input, score) : score;
}

/** `scorer.compareWith`: a second scorer of the same rows, kept apart, and how the two rank the rows alike. */
async function compareScores(
  cfg: ResolvedInput,
  { cpuAs, gpuAs }: StepActivities,
  progress: RunProgress,
  input: ScoreInput,
  score: ScoreResult,
): Promise<ScoreResult> {
  const compareWith = cfg.scorer.compareWith!;
  progress.enter('score-compare');
  const compareInput = { ...input, output: 'compare' as const };
  const second =
    compareWith.kind === 'ifd'
      ? await gpuAs('score-compare').scoreIfd({ ...compareInput, ifd: ifdSettings(cfg) })
      : await cpuAs('score-compare').scoreDifficulty({
          ...compareInput,
          scorer: { ...cfg.scorer, kind: compareWith.kind, files: compareWith.files },
        });
  const ref = { runId: cfg.runId, store: cfg.store };
  const agreement = await cpuAs('score-agreement').scoreAgreement({ ...ref, primary: score, secondary: second });
  progress.finish('score-compare');
  return { ...score, agreement };
}

/** IFD is computed by the base model, prompted as it will be trained. */
const ifdSettings = (cfg: ResolvedInput) => ({
  model: cfg.training.baseModel,
  maxLength: cfg.training.maxLength,
  modelSeed: cfg.training.seed,
  progressTimeout: cfg.training.progressTimeout,
  ...(cfg.training.conversationTemplate !== undefined && {
    conversationTemplate: cfg.training.conversationTemplate,
  }),
  ...(cfg.scorer.ifdBatchSize !== undefined && { batchSize: cfg.scorer.ifdBatchSize }),
});
