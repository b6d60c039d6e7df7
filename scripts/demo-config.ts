/**
 * The demo run's input, one place for `npm run demo` and the tests that run the same configuration.
 *
 * tiny (default): the paper's setting at toy size. The builtin tiny Llama, pretrained once on generic text that
 * teaches words and letters and none of the tasks (data/pretrain_tiny.py; the weights are committed in
 * data/tiny-pretrained), is instruction-tuned on the demo tasks: three stages one after another, the One-off on all
 * rows at once, and the random-order control, all at one learning rate and epochs chosen with the sweep that
 * data/README.md records (data/sweep_demo_lr.py, which trains each arm on its rows in the pipeline's order). What each
 * arm learned is whatever the last run printed; the README quotes a run's output.
 * smollm2: the pretrained SmolLM2-135M-Instruct (`builtin:smollm2-135m-instruct`), fine-tuned with a learning rate
 * fit for a pretrained model; slower on a CPU, meant for those with more time or a GPU.
 */
import { join } from 'node:path';
import type { PipelineInput } from '../common/settings/schema';

export const DEMO_MODELS = ['tiny', 'smollm2'] as const;
export type DemoModel = (typeof DEMO_MODELS)[number];
export const DEMO_BENCHMARK = 'demo-heldout';

/** The pretrained tiny model, relative to the repository root. */
export const TINY_PRETRAINED = join('data', 'tiny-pretrained');

const TRAINING: Record<DemoModel, NonNullable<PipelineInput['training']>> = {
  // A local model gets the paper's presets (global batch 128, 2,048 tokens): the tiny model's batch is set here.
  // 20 epochs: at 10 the random-order control's first stage (a third of the One-off's steps, rows of every level) ended
  // far above the other trainings' loss, and at 15 still above the convergence rule's bound (data/README.md).
  // A checkpoint every 500 steps: each one is copied to the store, and the demo's trainings take 1,500 to 4,500 steps.
  tiny: { epochs: 20, batchSize: 8, gradientAccumulation: 1, learningRate: 1e-3, maxLength: 256, saveSteps: 500 },
  smollm2: {
    baseModel: 'builtin:smollm2-135m-instruct',
    epochs: 1,
    batchSize: 8,
    learningRate: 1e-4,
    maxLength: 256,
    saveSteps: 100,
  },
};

export function demoInput(args: {
  model: DemoModel;
  dataset: string;
  heldout: string;
  /** The repository root, where the pretrained tiny model is. */
  root: string;
  runId: string;
  epochs?: number;
}): PipelineInput {
  const training = { baseModel: join(args.root, TINY_PRETRAINED), ...TRAINING[args.model] };
  return {
    dataset: args.dataset,
    runId: args.runId,
    training: { ...training, ...(args.epochs !== undefined && { epochs: args.epochs }) },
    // The tiny model never learned to write the space after "Assistant:" (the training template masks it).
    evaluation: {
      benchmarks: [{ name: DEMO_BENCHMARK, uri: args.heldout }],
      maxNewTokens: 32,
      ...(args.model === 'tiny' && { assistantMarker: 'training' as const, controls: ['random' as const] }),
    },
  };
}
