// The control orderings of `evaluation.controls` as workflow branches: each trains its stages one after another from
// the same base model as the real run, like the real stages. Workflow code: no Node built-ins, no I/O.
import type { ControlOrdering, RandomControlInput } from '../activities/segment/control-orderings';
import type { SegmentResult, StageSplit, StepRef, TrainInput, TrainResult } from '../activities/types';
import type { ResolvedInput } from '../common/input';

/** Training name of the k-th stage (1 = trained first) of a control ordering: `random-stage-2`. */
export const controlStageName = (ordering: ControlOrdering, k: number): string => `${ordering}-stage-${k}`;

export interface ControlBranchesArgs {
  ref: StepRef;
  controls: readonly ControlOrdering[];
  segment: Pick<SegmentResult, 'stages' | 'oneOff'>;
  /** Optimizer steps of each real stage (index = stage - 1). */
  stageSteps: readonly number[];
  training: ResolvedInput['training'];
  seed: number;
  segmentRandomControl: (input: RandomControlInput) => Promise<StageSplit[]>;
  trainStage: (name: string, input: TrainInput) => Promise<TrainResult>;
}

/** Trains every control ordering; resolves to each ordering's stage models in training order. */
export async function trainControlBranches(args: ControlBranchesArgs): Promise<Record<string, TrainResult[]>> {
  const real = args.segment.stages.filter((s) => s.rows > 0);
  const chains = args.controls.map(async (ordering): Promise<[string, TrainResult[]]> => {
    // Position k of a control takes the optimizer steps of the real stage whose rows it trains on (random: the real
    // stage of the same size at that position), so every ordering spends the same total steps.
    const splits: Array<{ split: StageSplit; steps: number }> =
      ordering === 'random'
        ? (
            await args.segmentRandomControl({
              ...args.ref,
              stages: real.map(({ stage, rows }) => ({ stage, rows })),
              pool: { uri: args.segment.oneOff.uri, sha256: args.segment.oneOff.sha256 },
              seed: args.seed,
            })
          ).map((split, i) => ({ split, steps: args.stageSteps[real[i].stage - 1] }))
        : [...real].reverse().map((split) => ({ split, steps: args.stageSteps[split.stage - 1] }));
    const models: TrainResult[] = [];
    let initModel = args.training.baseModel;
    for (const [index, { split, steps }] of splits.entries()) {
      const name = controlStageName(ordering, index + 1);
      const trained = await args.trainStage(name, {
        ...args.ref,
        name,
        dataUri: split.uri,
        dataSha256: split.sha256,
        initModel,
        maxSteps: steps,
        training: args.training,
      });
      models.push(trained);
      initModel = trained.modelUri;
    }
    return [ordering, models];
  });
  return Object.fromEntries(await Promise.all(chains));
}
