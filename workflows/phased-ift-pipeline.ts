import { proxyLocalActivities, workflowInfo } from '@temporalio/workflow';
import type { EvaluateResult, ExportResult, ScoreResult, SegmentResult, TrainResult } from '../activities/types';
import type { ReportResult } from '../activities/report/write-report';
import { heldoutSplit } from '../common/settings/derive';
import type { PipelineInput } from '../common/settings/schema';
import { evaluateModels } from './evaluate-models';
import { checkBeforeScoring } from './preflight';
import { RunProgress } from './run-progress';
import { scoreRows } from './score-rows';
import { retrying, stepActivities, type CpuActivities } from './step-activities';
import { trainBranches } from './train-branches';

export interface PipelineResult {
  runId: string;
  store: string;
  scorer: string;
  /** With `scorer.compareWith`: the second scorer and the rank agreement of the two. */
  scoreAgreement?: { scorer: string; spearman: number | null; rows: number };
  stages: Array<{ stage: number; rows: number; minScore: number | null; maxScore: number | null }>;
  training: TrainResult[];
  /** The stages written for other trainers. */
  export?: ExportResult;
  /** The results tables, one line each in `table`: readable in the Web UI's JSON view of the result. */
  evaluation?: EvaluateResult & { table?: string[] };
  /** report.md and report.html in the store. */
  report?: Pick<ReportResult, 'markdownUri' | 'htmlUri'>;
}

const { resolveInput } = proxyLocalActivities<CpuActivities>({
  startToCloseTimeout: '1 minute',
  retry: retrying({ maximumAttempts: 3 }),
});

/**
 * Phased IFT (Pang et al. 2024): score → segment → stage 1 → … → stage N, a One-off baseline and the control orderings
 * as branches beside the stages, then pairwise evaluation. Every step is an idempotent activity that commits a
 * manifest in the store, so a re-run with the same run id skips finished steps and continues training from its newest
 * checkpoint.
 */
export async function phasedIftPipeline(input: PipelineInput): Promise<PipelineResult> {
  const progress = new RunProgress(input?.runId ?? workflowInfo().workflowId);
  try {
    progress.enter('validate');
    const cfg = await resolveInput(input, workflowInfo().workflowId);
    Object.assign(progress.state, { runId: cfg.runId, stages: cfg.stages.count });
    const acts = stepActivities(cfg);
    const ref = { runId: cfg.runId, store: cfg.store };
    await checkBeforeScoring(cfg);
    const score = await scoreRows(cfg, acts, progress);

    progress.enter('segment');
    const trains = cfg.training.mode !== 'export-only';
    const seg = await acts.cpuAs('segment').segmentStages({ ...ref, score, stages: cfg.stages, ...heldoutSplit(cfg) });
    progress.finish('segment');
    const exported = await acts.cpuAs('export').exportStages({ ...ref, segment: seg });
    const summary = { ...ref, ...scoreSummary(score), stages: stagesSummary(seg) };
    if (!trains) {
      progress.done();
      return { ...summary, training: [], export: exported };
    }

    // Benchmarks are read and checked before hours of training, so a bad prompt file fails the run at once.
    const benchmarks =
      cfg.baseline.mode === 'skip'
        ? []
        : await acts.cpuAs('benchmarks').prepareBenchmarks({
            ...ref,
            benchmarks: cfg.evaluation.benchmarks,
            heldout: seg.heldout,
            maxRowBytes: cfg.maxRowBytes,
          });
    const trained = await trainBranches(cfg, acts, progress, seg);
    const { stages, controls, baseline } = trained;
    const result = {
      ...summary,
      training: [...stages, ...Object.values(controls).flat(), ...(baseline ? [baseline] : [])],
      export: exported,
    };
    if (cfg.baseline.mode === 'skip') {
      progress.done();
      return result;
    }

    const { evaluation, report } = await evaluateModels(cfg, acts, progress, trained, benchmarks);
    progress.done(`${evaluation.markdown}\n\nReport: ${report.htmlUri}`);
    return {
      ...result,
      evaluation: { ...evaluation, table: evaluation.markdown.trimEnd().split('\n') },
      report: { markdownUri: report.markdownUri, htmlUri: report.htmlUri },
    };
  } catch (err) {
    throw await progress.failed(err);
  }
}

/** The scorer's name, and the comparison's few numbers in runs that asked for one. */
const scoreSummary = ({ scorer, agreement: a }: ScoreResult): Pick<PipelineResult, 'scorer' | 'scoreAgreement'> => ({
  scorer,
  ...(a && { scoreAgreement: { scorer: a.secondary.scorer, spearman: a.spearman, rows: a.rows } }),
});

const stagesSummary = (seg: SegmentResult): PipelineResult['stages'] =>
  seg.stages.map(({ stage, rows, minScore, maxScore }) => ({ stage, rows, minScore, maxScore }));
