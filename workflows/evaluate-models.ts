import type { EvaluateResult, GenerateResult, PreparedBenchmark } from '../activities/types';
import type { ReportResult } from '../activities/report/write-report';
import { ONE_OFF } from '../common/constants';
import type { ResolvedInput } from '../common/settings/schema';
import { answerInBatches } from './batch-answers';
import { generationSettings } from './generation-input';
import { withRecomputedProducers } from './recompute-producer';
import type { RunProgress } from './run-progress';
import type { StepActivities } from './step-activities';
import type { TrainedModels } from './train-branches';

/**
 * Generation and pairwise evaluation: the baseline and the candidates (the last stage, or every stage with
 * `evaluation.perStage`; the same of each control ordering) answer the benchmarks, a judge compares each candidate's
 * answers with the baseline's, and the report is written.
 */
export async function evaluateModels(
  cfg: ResolvedInput,
  { cpuAs, gpuAs, producers }: StepActivities,
  progress: RunProgress,
  trained: TrainedModels,
  benchmarks: PreparedBenchmark[],
): Promise<{ evaluation: EvaluateResult; report: ReportResult }> {
  const ref = { runId: cfg.runId, store: cfg.store };
  progress.enter('generate');
  const generation = generationSettings(cfg, ref, benchmarks);
  const answer = (name: string, modelUri: string): Promise<GenerateResult> =>
    // A damaged model is recomputed by its training first (recompute-producer.ts).
    withRecomputedProducers(producers, () =>
      gpuAs(`generate-${name}`).generateAnswers({ ...generation, name, modelUri }),
    );
  const baseline = await answer(ONE_OFF, trained.baseline ? trained.baseline.modelUri : cfg.baseline.checkpoint!);
  const pick = <T>(models: T[]) => (cfg.evaluation.perStage ? models : models.slice(-1));
  const candidates: GenerateResult[] = [];
  const orderings: Record<string, string[]> = { ascending: pick(trained.stages).map((m) => m.name) };
  for (const [ordering, models] of [['ascending', trained.stages] as const, ...Object.entries(trained.controls)]) {
    for (const model of pick(models)) candidates.push(await answer(model.name, model.modelUri));
    orderings[ordering] = pick(models).map((m) => m.name);
  }
  progress.finish('generate');

  progress.enter('evaluate');
  const e = cfg.evaluation;
  const input = {
    ...ref,
    benchmarks,
    baseline,
    candidates,
    judge: e.judge,
    judgeModel: e.judgeModel,
    concurrency: e.concurrency,
    reaskUnparseable: e.reaskUnparseable,
    parseRetries: e.parseRetries,
    requestsPerMinute: e.requestsPerMinute,
    tokensPerMinute: e.tokensPerMinute,
    cache: e.cache,
    pricePerMillionTokens: e.pricePerMillionTokens,
    maxCostUsd: e.maxCostUsd,
    maxTokens: e.maxTokens,
    ...((e.controls ?? []).length > 0 && { orderings }),
  };
  // evaluation.mode "batch": Batch API rounds fill the judge cache first.
  if (cfg.evaluation.mode === 'batch') {
    await answerInBatches('evaluate', cpuAs, input, cfg.evaluation);
    progress.finish('evaluate-batch');
  }
  const evaluation = await cpuAs('evaluate').evaluate(input);
  progress.finish('evaluate');
  progress.enter('report');
  const report = await cpuAs('report').writeReport(ref);
  progress.finish('report');
  return { evaluation, report };
}
