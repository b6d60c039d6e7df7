import { CancellationScope } from '@temporalio/workflow';
import type { SegmentResult, TrainInput, TrainResult } from '../activities/types';
import { ONE_OFF, stageName } from '../common/constants';
import { optimizerSteps } from '../common/settings/derive';
import type { ResolvedInput } from '../common/settings/schema';
import { withRecomputedProducers } from './recompute-producer';
import type { RunProgress } from './run-progress';
import type { StepActivities } from './step-activities';

export interface TrainedModels {
  stages: TrainResult[];
  baseline?: TrainResult;
  /** Each control ordering's stage models, in training order. */
  controls: Record<string, TrainResult[]>;
}

/** One training of a chain: its name, its rows and its optimizer steps. */
interface Link {
  name: string;
  data: { uri: string; sha256: string };
  steps: number;
  /** The real stage's number, for the run's progress; absent for a control's stage. */
  stage?: number;
}

/**
 * Every training of a run goes through here: the stages, the One-off baseline and the control orderings. The
 * activity is named for the Web UI and `pift status` by the training's name ('stage-2', 'one-off', 'random-stage-1').
 * A damaged model of an earlier training (a stage's start) is recomputed by running that training again, and each
 * finished training is registered so that a later step can do the same with its model.
 */
async function trainStage(acts: StepActivities, input: TrainInput): Promise<TrainResult> {
  const train = () => acts.gpuAs(input.name).trainStage(input);
  const trained = await withRecomputedProducers(acts.producers, train);
  acts.producers.set(`${input.runId}/train/${input.name}`, train);
  return trained;
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
  const ref = { runId: cfg.runId, store: cfg.store };
  const stageSteps = seg.stages.map((s) => (s.rows > 0 ? optimizerSteps(s.rows, cfg.training) : 0));
  // An empty stage is only possible with stages.allowEmpty; it is not trained.
  const real = seg.stages.filter((s) => s.rows > 0);
  const train = (link: Link, initModel: string) =>
    trainStage(acts, {
      ...ref,
      name: link.name,
      dataUri: link.data.uri,
      dataSha256: link.data.sha256,
      initModel,
      maxSteps: link.steps,
      training: cfg.training,
    });
  /** Each link a fresh training from the previous one's final weights (new optimizer, warmup); the first from the base. */
  const trainChain = async (links: Link[]): Promise<TrainResult[]> => {
    const models: TrainResult[] = [];
    for (const link of links) {
      if (link.stage !== undefined) progress.enter(link.name, link.stage);
      models.push(await train(link, models.at(-1)?.modelUri ?? cfg.training.baseModel));
      if (link.stage !== undefined) progress.finish(link.name);
    }
    return models;
  };

  /** `evaluation.controls`: other orderings of the same rows, from the same start, beside the stages. */
  const trainControl = async (ordering: string): Promise<[string, TrainResult[]]> => {
    // Position k of a control takes the optimizer steps of the real stage whose rows it trains on (random: the real
    // stage of the same size at that position), so every ordering spends the same total steps.
    const splits =
      ordering === 'random'
        ? (
            await acts.cpuAs('controls-random').segmentRandomControl({
              ...ref,
              stages: real.map(({ stage, rows }) => ({ stage, rows })),
              pool: { uri: seg.oneOff.uri, sha256: seg.oneOff.sha256 },
              seed: cfg.stages.seed,
            })
          ).map((split, i) => ({ split, steps: stageSteps[real[i].stage - 1] }))
        : [...real].reverse().map((split) => ({ split, steps: stageSteps[split.stage - 1] }));
    const links = splits.map(({ split, steps }, i) => ({ name: `${ordering}-stage-${i + 1}`, data: split, steps }));
    return [ordering, await trainChain(links)];
  };

  const scope = new CancellationScope();
  // Scheduled in this order: the baseline (all rows, shuffled, as many optimizer steps as the stages together),
  // the controls, then stage 1.
  const branches = await scope.run(async () => {
    const baseline =
      cfg.baseline.mode === 'train'
        ? train(
            { name: ONE_OFF, data: seg.oneOff, steps: stageSteps.reduce((a, b) => a + b, 0) },
            cfg.training.baseModel,
          )
        : Promise.resolve(undefined);
    const controls = Promise.all((cfg.evaluation.controls ?? []).map(trainControl)).then(Object.fromEntries);
    const stages = trainChain(
      real.map((s) => ({ name: stageName(s.stage), data: s, steps: stageSteps[s.stage - 1], stage: s.stage })),
    );
    return [baseline, controls, stages] as const;
  });
  try {
    const [baseline, controls, stages] = await Promise.all(branches);
    progress.finish(...(baseline ? [ONE_OFF] : []), ...Object.keys(controls));
    return { stages, baseline, controls };
  } catch (err) {
    scope.cancel();
    await Promise.allSettled(branches);
    throw err;
  }
}
