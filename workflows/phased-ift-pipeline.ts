import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
// Only import the activity types: activity code must never reach the workflow bundle.
import type { createCpuActivities } from '../activities/cpu';
import type { createGpuActivities } from '../activities/gpu';
import type { EvaluateResult, ExportResult, GenerateResult, ScoreResult, TrainResult } from '../activities/types';
import type { ReportResult } from '../activities/report/write-report';
import type { ActivityOptions, Duration } from '@temporalio/common';
import { HUB_DATASET_PREFIX, ONE_OFF, PIFT_STEP, SHARDABLE_SCORERS, shardQueue, stageName } from '../common/constants';
import { FailureType, failureTypeOf, NON_RETRYABLE_FAILURES } from '../common/failures';
import { optimizerSteps, type PipelineInput } from '../common/input';
import { progressQuery, type Progress } from './messages';
import { checkBeforeScoring } from './preflight';
import { trainControlBranches } from './control-branches';
import { judgeInBatches, scoreInBatches } from './batch-answers';
import { scoreInShards } from './score-shards';
import { generationSettings } from './generation-input';
import { withRecomputedProducers, type Producers } from './recompute-producer';

type CpuActivities = ReturnType<typeof createCpuActivities>;
type GpuActivities = ReturnType<typeof createGpuActivities>;

export interface PipelineResult {
  runId: string;
  store: string;
  scorer: string;
  /** With `scorer.compareWith`: the second scorer and the rank agreement of the two. */
  scoreAgreement?: { scorer: string; spearman: number | null; rows: number };
  stages: Array<{ stage: number; rows: number; minScore: number | null; maxScore: number | null }>;
  training: TrainResult[];
  /** The stages written for other trainers (runs started before the export step have none). */
  export?: ExportResult;
  evaluation?: {
    resultsUri: string;
    markdownUri: string;
    judge: string;
    winRates: Record<string, Record<string, number>>;
    markdown: string;
    /** The results tables, one line each: readable in the Web UI's JSON view of the result. */
    table?: string[];
    accuracy?: EvaluateResult['accuracy'];
    orderings?: EvaluateResult['orderings'];
  };
  /** report.md and report.html in the store. */
  report?: Pick<ReportResult, 'markdownUri' | 'htmlUri'>;
}

const { resolveInput } = proxyLocalActivities<CpuActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
});

/**
 * Phased IFT (Pang et al. 2024): score → segment → stage 1 → … → stage N, a One-off baseline as its own branch,
 * then pairwise evaluation. Every step is an idempotent activity that commits a manifest in the store, so a re-run
 * with the same run id skips finished steps and continues training from its newest checkpoint.
 */
export async function phasedIftPipeline(input: PipelineInput): Promise<PipelineResult> {
  const progress: Progress = {
    runId: input?.runId ?? workflowInfo().workflowId,
    step: 'validate',
    finished: [],
  };
  setHandler(progressQuery, () => progress);
  const enter = (step: string, stage?: number) => {
    progress.step = step;
    progress.stage = stage;
    upsertSearchAttributes([{ key: PIFT_STEP, value: step }]);
    setCurrentDetails(currentDetails(progress));
  };

  // When the run fails or is cancelled, branches still running are stopped and awaited before the run closes.
  let stopBranches = async (): Promise<void> => undefined;
  try {
    enter('validate');
    const cfg = await resolveInput(input, workflowInfo().workflowId);
    progress.runId = cfg.runId;
    progress.stages = cfg.stages.count;
    const ref = { runId: cfg.runId, store: cfg.store };

    const cpuOptions: ActivityOptions = {
      startToCloseTimeout: '1 day',
      heartbeatTimeout: '2 minutes',
      retry: {
        initialInterval: '2 seconds',
        maximumInterval: '1 minute',
        maximumAttempts: 10,
        nonRetryableErrorTypes: NON_RETRYABLE_FAILURES,
      },
    };
    const gpuOptions: ActivityOptions = {
      taskQueue: cfg.gpuTaskQueue,
      // A cancelled run waits until the trainer's process group is gone and its last checkpoint is stored.
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      // Long trainings are bounded by the heartbeat (a dead worker is noticed within it), not by a wall clock.
      startToCloseTimeout: '30 days',
      heartbeatTimeout: cfg.training.heartbeatTimeout as Duration,
      retry: {
        initialInterval: '5 seconds',
        maximumInterval: '5 minutes',
        maximumAttempts: cfg.training.maxAttempts,
        nonRetryableErrorTypes: NON_RETRYABLE_FAILURES,
      },
    };
    // Per call: the Web UI names each activity by what it does ('stage-2', not four 'trainStage' bars), and the
    // activity id carries the same name so `pift status` can name a pending activity without reading the history.
    // Runs started before this kept numbered ids; the patch lets them replay.
    const idsAreNames = patched('activity-ids-name-the-stage');
    const named = (name: string) => ({ summary: name, ...(idsAreNames ? { activityId: name } : {}) });
    const cpuAs = (name: string) => proxyActivities<CpuActivities>({ ...cpuOptions, ...named(name) });
    const gpuAs = (name: string) => proxyActivities<GpuActivities>({ ...gpuOptions, ...named(name) });

    // Runs recorded before these checks existed replay without them.
    if (patched('preflight-checks')) await checkBeforeScoring(cfg);

    // A hub dataset is materialized into the run's store first, at a recorded commit, and read from there.
    let dataset = cfg.dataset;
    if (cfg.dataset.startsWith(HUB_DATASET_PREFIX) && patched('hub-dataset')) {
      enter('dataset');
      const fetched = await cpuAs('dataset').fetchHubDataset({ ...ref, uri: cfg.dataset });
      progress.finished.push(`dataset@${fetched.revision}`);
      dataset = fetched.uri;
    }

    enter('score');
    const scoreInput = {
      ...ref,
      dataset,
      datasetFormat: cfg.datasetFormat,
      ...(cfg.datasetColumns ? { datasetColumns: cfg.datasetColumns } : {}),
      scorer: cfg.scorer,
      maxRowBytes: cfg.maxRowBytes,
    };
    // scorer.mode "batch": Batch API rounds fill the answer cache first. Only such a run records the patch, so the
    // default path issues the same commands as before.
    if (cfg.scorer.mode === 'batch' && patched('batch-scoring')) {
      await scoreInBatches(cpuAs, scoreInput, cfg.scorer);
      progress.finished.push('score-batch');
    }
    // IFD is computed by the base model on the GPU queue. Only such runs record the patch (the kind is new).
    const ifd = {
      model: cfg.training.baseModel,
      maxLength: cfg.training.maxLength,
      modelSeed: cfg.training.seed,
      progressTimeout: cfg.training.progressTimeout,
      ...(cfg.training.conversationTemplate !== undefined && {
        conversationTemplate: cfg.training.conversationTemplate,
      }),
      ...(cfg.scorer.ifdBatchSize !== undefined && { batchSize: cfg.scorer.ifdBatchSize }),
    };
    // scorer.shardRows: a large dataset is scored in shards across the CPU workers. Only runs that set it record
    // the patch, so every other run issues the same commands as before.
    const shardRows = cfg.scorer.shardRows;
    const sharded = () =>
      shardRows !== undefined && SHARDABLE_SCORERS.includes(cfg.scorer.kind) && patched('score-shards');
    // Shards go to the shard queue of the CPU workers (this workflow's queue), which each take a few at a time; runs
    // recorded before that queue existed sent them to the CPU queue, and replay so.
    const shardsAs = (name: string) =>
      patched('score-shard-queue')
        ? proxyActivities<CpuActivities>({
            ...cpuOptions,
            taskQueue: shardQueue(workflowInfo().taskQueue),
            ...named(name),
          })
        : cpuAs(name);
    let score =
      cfg.scorer.kind === 'ifd' && patched('ifd-scorer')
        ? await gpuAs('score').scoreIfd({ ...scoreInput, ifd })
        : sharded()
          ? await scoreInShards(cpuAs, scoreInput, shardRows!, shardsAs)
          : await cpuAs('score').scoreDifficulty(scoreInput);
    progress.finished.push('score');

    // scorer.compareWith: a second scorer of the same rows, kept apart, and how the two rank the rows alike.
    const compareWith = cfg.scorer.compareWith;
    if (compareWith && patched('score-agreement')) {
      enter('score-compare');
      const compareInput = { ...scoreInput, output: 'compare' as const };
      const second =
        compareWith.kind === 'ifd'
          ? await gpuAs('score-compare').scoreIfd({ ...compareInput, ifd })
          : await cpuAs('score-compare').scoreDifficulty({
              ...compareInput,
              scorer: { ...cfg.scorer, kind: compareWith.kind, files: compareWith.files },
            });
      const agreement = await cpuAs('score-agreement').scoreAgreement({ ...ref, primary: score, secondary: second });
      score = { ...score, agreement };
      progress.finished.push('score-compare');
    }

    enter('segment');
    const exportOnly = cfg.training.mode === 'export-only';
    const useHeldout = !exportOnly && cfg.baseline.mode !== 'skip' && cfg.evaluation.benchmarks.length === 0;
    const seg = await cpuAs('segment').segmentStages({
      ...ref,
      score,
      stages: cfg.stages,
      heldoutFraction: useHeldout ? cfg.evaluation.heldoutFraction : 0,
      heldoutMax: cfg.evaluation.heldoutMax,
    });
    progress.finished.push('segment');

    // Runs recorded before the export step replay without it.
    const exported = patched('export-stages')
      ? await cpuAs('export').exportStages({ ...ref, segment: seg })
      : undefined;
    const stagesSummary = seg.stages.map(({ stage, rows, minScore, maxScore }) => ({
      stage,
      rows,
      minScore,
      maxScore,
    }));
    if (exportOnly) {
      enter('done');
      return {
        runId: cfg.runId,
        store: cfg.store,
        scorer: score.scorer,
        ...agreementSummary(score),
        stages: stagesSummary,
        training: [],
        export: exported,
      };
    }

    // Benchmarks are read and checked before hours of training, so a bad prompt file fails the run at once.
    const benchmarks =
      cfg.baseline.mode === 'skip'
        ? []
        : await cpuAs('benchmarks').prepareBenchmarks({
            ...ref,
            benchmarks: cfg.evaluation.benchmarks,
            heldout: seg.heldout,
            maxRowBytes: cfg.maxRowBytes,
          });

    const stageSteps = seg.stages.map((s) => (s.rows > 0 ? optimizerSteps(s.rows, cfg.training) : 0));
    const totalSteps = stageSteps.reduce((a, b) => a + b, 0);

    // The One-off baseline is its own branch: all rows, shuffled, the same total number of optimizer steps.
    const baselineScope = new CancellationScope();
    const baselineTraining: Promise<TrainResult | undefined> =
      cfg.baseline.mode === 'train'
        ? baselineScope.run(() =>
            gpuAs(ONE_OFF).trainStage({
              ...ref,
              name: ONE_OFF,
              dataUri: seg.oneOff.uri,
              dataSha256: seg.oneOff.sha256,
              initModel: cfg.training.baseModel,
              maxSteps: totalSteps,
              training: cfg.training,
            }),
          )
        : Promise.resolve(undefined);
    // Keep a failure of the branch from being unobserved while the stages run; it is awaited below.
    baselineTraining.catch(() => undefined);
    stopBranches = async () => {
      baselineScope.cancel();
      await baselineTraining.catch(() => undefined);
    };

    // evaluation.controls: other orderings of the same rows, from the same start, as branches beside the stages.
    // Only a run that asks for controls records the patch, so the default path issues the same commands as before.
    const controls = cfg.evaluation.controls ?? [];
    let controlTraining: Promise<Record<string, TrainResult[]>> = Promise.resolve({});
    if (controls.length > 0 && patched('controls')) {
      const controlScope = new CancellationScope();
      controlTraining = controlScope.run(() =>
        trainControlBranches({
          ref,
          controls,
          segment: seg,
          stageSteps,
          training: cfg.training,
          seed: cfg.stages.seed,
          segmentRandomControl: (i) => cpuAs('controls-random').segmentRandomControl(i),
          trainStage: (name, i) => gpuAs(name).trainStage(i),
        }),
      );
      controlTraining.catch(() => undefined);
      const stopBaseline = stopBranches;
      stopBranches = async () => {
        controlScope.cancel();
        await controlTraining.catch(() => undefined);
        await stopBaseline();
      };
    }

    const stageModels: TrainResult[] = [];
    const producers: Producers = new Map();
    let initModel = cfg.training.baseModel;
    for (const split of seg.stages) {
      if (split.rows === 0) continue; // only possible with stages.allowEmpty
      const name = stageName(split.stage);
      enter(name, split.stage);
      // Each stage is a fresh training run from the previous stage's final weights: new optimizer, warmup, cosine.
      const stageInput = {
        ...ref,
        name,
        dataUri: split.uri,
        dataSha256: split.sha256,
        initModel,
        maxSteps: stageSteps[split.stage - 1],
        training: cfg.training,
      };
      // A damaged model of the stage before is recomputed by running that stage again (recompute-producer.ts).
      const trained = await withRecomputedProducers(producers, () => gpuAs(name).trainStage(stageInput));
      producers.set(`${cfg.runId}/train/${name}`, () => gpuAs(name).trainStage(stageInput));
      stageModels.push(trained);
      progress.finished.push(name);
      initModel = trained.modelUri;
    }
    const baseline = await baselineTraining;
    if (baseline) progress.finished.push(ONE_OFF);
    const controlModels = await controlTraining;
    for (const ordering of controls) progress.finished.push(ordering);

    const result: PipelineResult = {
      runId: cfg.runId,
      store: cfg.store,
      scorer: score.scorer,
      ...agreementSummary(score),
      stages: stagesSummary,
      training: [...stageModels, ...Object.values(controlModels).flat(), ...(baseline ? [baseline] : [])],
      ...(exported ? { export: exported } : {}),
    };
    if (cfg.baseline.mode === 'skip') {
      enter('done');
      return result;
    }

    enter('generate');
    const baselineModel = baseline ? baseline.modelUri : cfg.baseline.checkpoint!;
    const candidates = cfg.evaluation.perStage ? stageModels : stageModels.slice(-1);
    const generation = generationSettings(cfg, ref, benchmarks);
    const baselineAnswers = await gpuAs(`generate-${ONE_OFF}`).generateAnswers({
      ...generation,
      name: ONE_OFF,
      modelUri: baselineModel,
    });
    const candidateAnswers: GenerateResult[] = [];
    for (const model of candidates) {
      candidateAnswers.push(
        await withRecomputedProducers(producers, () =>
          gpuAs(`generate-${model.name}`).generateAnswers({
            ...generation,
            name: model.name,
            modelUri: model.modelUri,
          }),
        ),
      );
    }
    // The same candidates of each control ordering, answered and judged against the same baseline.
    const orderings: Record<string, string[]> = {};
    for (const [ordering, models] of Object.entries(controlModels)) {
      const picked = cfg.evaluation.perStage ? models : models.slice(-1);
      for (const model of picked) {
        candidateAnswers.push(
          await gpuAs(`generate-${model.name}`).generateAnswers({
            ...generation,
            name: model.name,
            modelUri: model.modelUri,
          }),
        );
      }
      orderings[ordering] = picked.map((m) => m.name);
    }
    progress.finished.push('generate');

    enter('evaluate');
    const evaluateInput = {
      ...ref,
      benchmarks,
      baseline: baselineAnswers,
      candidates: candidateAnswers,
      judge: cfg.evaluation.judge,
      judgeModel: cfg.evaluation.judgeModel,
      concurrency: cfg.evaluation.concurrency,
      reaskUnparseable: cfg.evaluation.reaskUnparseable,
      parseRetries: cfg.evaluation.parseRetries,
      requestsPerMinute: cfg.evaluation.requestsPerMinute,
      tokensPerMinute: cfg.evaluation.tokensPerMinute,
      cache: cfg.evaluation.cache,
      pricePerMillionTokens: cfg.evaluation.pricePerMillionTokens,
      maxCostUsd: cfg.evaluation.maxCostUsd,
      maxTokens: cfg.evaluation.maxTokens,
      ...(controls.length > 0 && { orderings: { ascending: candidates.map((m) => m.name), ...orderings } }),
    };
    // evaluation.mode "batch": Batch API rounds fill the judge cache first; only such a run records the patch.
    if (cfg.evaluation.mode === 'batch' && patched('batch-judging')) {
      await judgeInBatches(cpuAs, evaluateInput, cfg.evaluation);
      progress.finished.push('evaluate-batch');
    }
    const evaluation = await cpuAs('evaluate').evaluate(evaluateInput);
    progress.finished.push('evaluate');
    // Runs recorded before the report step replay without it.
    let report: ReportResult | undefined;
    if (patched('report')) {
      enter('report');
      report = await cpuAs('report').writeReport(ref);
      progress.finished.push('report');
    }
    enter('done');
    const reportLine = report ? `\n\nReport: ${report.htmlUri}` : '';
    setCurrentDetails(`${currentDetails(progress)}\n\n${evaluation.markdown}${reportLine}`);
    return {
      ...result,
      evaluation: { ...evaluation, table: evaluation.markdown.trimEnd().split('\n') },
      ...(report ? { report: { markdownUri: report.markdownUri, htmlUri: report.htmlUri } } : {}),
    };
  } catch (err) {
    await CancellationScope.nonCancellable(stopBranches);
    if (isCancellation(err)) {
      progress.step = 'cancelled';
      setCurrentDetails(currentDetails(progress));
      // The search attribute update must still happen on a cancelled workflow.
      await CancellationScope.nonCancellable(async () =>
        upsertSearchAttributes([{ key: PIFT_STEP, value: 'cancelled' }]),
      );
      throw err;
    }
    progress.error = describeFailure(err);
    // Bad input is the user's to fix and is already in the failure; anything else is the operator's concern.
    const badInput = failureTypeOf(err) === FailureType.BadInput;
    (badInput ? log.warn : log.error)('pipeline failed', { step: progress.step, error: progress.error });
    upsertSearchAttributes([{ key: PIFT_STEP, value: 'failed' }]);
    progress.step = 'failed';
    setCurrentDetails(`${currentDetails(progress)}\n\n${progress.error}`);
    throw err;
  }
}

/** The comparison's few numbers, only in runs that asked for one. */
const agreementSummary = ({ agreement: a }: ScoreResult): Pick<PipelineResult, 'scoreAgreement'> =>
  a ? { scoreAgreement: { scorer: a.secondary.scorer, spearman: a.spearman, rows: a.rows } } : {};

/** The run's current details in the Web UI (Markdown): the step, and what is finished. */
function currentDetails(p: Progress): string {
  const stage = p.stage && p.stages ? ` (stage ${p.stage} of ${p.stages})` : '';
  const done = p.finished.length ? `\n\nFinished: ${p.finished.join(', ')}` : '';
  return `**Step:** ${p.step}${stage}${done}`;
}

function describeFailure(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return describeFailure(err.cause);
  if (err instanceof ApplicationFailure) return `${err.type ?? 'Error'}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
