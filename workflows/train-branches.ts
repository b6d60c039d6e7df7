import { CancellationScope } from '@temporalio/workflow';
import type { SegmentResult, TrainResult } from '../activities/types';
import { ONE_OFF, stageName } from '../common/constants';
import { optimizerSteps, type ResolvedInput } from '../common/input';
import { trainControlBranches } from './control-branches';
import type { RunProgress } from './run-progress';
import type { StepActivities } from './step-activities';
import { trainStage } from './train-stage';

export interface TrainedModels {
  stages: TrainResult[];
  baseline?: TrainResult;
  /** Each control ordering's stage models, in training order. */
  controls: Record<string, TrainResult[]>;
}

/**
 * The stage chain, the One-off baseline and the control orderings, as branches of one `Promise.all`: the first
 * failure of any branch fails the run at once, and the branches still running are cancelled and awaited (their
 * trainers stopped, their last checkpoints stored) before the failure goes on.
 */
export async function trainBranches(
  cfg: ResolvedInput,
  acts: StepActivities,
  progress: RunProgress,
  seg: SegmentResult,
): Promise<TrainedModels> {
  const stageSteps = seg.stages.map((s) => (s.rows > 0 ? optimizerSteps(s.rows, cfg.training) : 0));
  const scope = new CancellationScope();
  let branches: Array<Promise<unknown>> = [];
  const all = scope.run(() => {
    // Scheduled in this order: the baseline, the controls, then stage 1.
    const baseline = trainBaseline(cfg, acts, seg, stageSteps);
    const controls = trainControls(cfg, acts, seg, stageSteps);
    const stages = trainStageChain(cfg, acts, progress, seg, stageSteps);
    branches = [baseline, controls, stages];
    return Promise.all([baseline, controls, stages]);
  });
  try {
    const [baseline, controls, stages] = await all;
    progress.finish(...(baseline ? [ONE_OFF] : []), ...Object.keys(controls));
    return { stages, baseline, controls };
  } catch (err) {
    scope.cancel();
    await Promise.allSettled(branches);
    throw err;
  }
}

/** Stage 1, …, stage N: each a fresh training from the previous stage's final weights (new optimizer, warmup). */
async function trainStageChain(
  cfg: ResolvedInput,
  acts: StepActivities,
  progress: RunProgress,
  seg: SegmentResult,
  stageSteps: number[],
): Promise<TrainResult[]> {
  const models: TrainResult[] = [];
  let initModel = cfg.training.baseModel;
  for (const split of seg.stages) {
    if (split.rows === 0) continue; // only possible with stages.allowEmpty
    const name = stageName(split.stage);
    progress.enter(name, split.stage);
    const ref = { runId: cfg.runId, store: cfg.store };
    const input = { ...ref, name, dataUri: split.uri, dataSha256: split.sha256, initModel, training: cfg.training };
    const trained = await trainStage(acts, name, { ...input, maxSteps: stageSteps[split.stage - 1] });
    models.push(trained);
    progress.finish(name);
    initModel = trained.modelUri;
  }
  return models;
}

/** The One-off baseline: all rows, shuffled, the same total number of optimizer steps as the stages. */
async function trainBaseline(
  cfg: ResolvedInput,
  acts: StepActivities,
  seg: SegmentResult,
  stageSteps: number[],
): Promise<TrainResult | undefined> {
  if (cfg.baseline.mode !== 'train') return undefined;
  return trainStage(acts, ONE_OFF, {
    runId: cfg.runId,
    store: cfg.store,
    name: ONE_OFF,
    dataUri: seg.oneOff.uri,
    dataSha256: seg.oneOff.sha256,
    initModel: cfg.training.baseModel,
    maxSteps: stageSteps.reduce((a, b) => a + b, 0),
    training: cfg.training,
  });
}

/** `evaluation.controls`: other orderings of the same rows, from the same start, beside the stages. */
async function trainControls(
  cfg: ResolvedInput,
  acts: StepActivities,
  seg: SegmentResult,
  stageSteps: number[],
): Promise<Record<string, TrainResult[]>> {
  const controls = cfg.evaluation.controls ?? [];
  if (controls.length === 0) return {};
  return trainControlBranches({
    ref: { runId: cfg.runId, store: cfg.store },
    controls,
    segment: seg,
    stageSteps,
    training: cfg.training,
    seed: cfg.stages.seed,
    segmentRandomControl: (i) => acts.cpuAs('controls-random').segmentRandomControl(i),
    trainStage: (name, i) => trainStage(acts, name, i),
  });
}
