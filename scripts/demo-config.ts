/**
 * The demo run's input, one place for `npm run demo` and the test that runs the same configuration at reduced size.
 *
 * tiny (default): the builtin tiny Llama, trained from scratch on a CPU. The demo data's tasks are short and
 * checkable, and its harder families compose the easier ones, so the few hundred optimizer steps of each stage teach
 * the model that stage's families: the last stage's model answers most of the hard held-out tasks exactly (it
 * forgets the earlier stages' instructions, which a model this small trained on one stage at a time does).
 * smollm2: the pretrained SmolLM2-135M-Instruct (`builtin:smollm2-135m-instruct`), fine-tuned with a learning rate
 * fit for a pretrained model; slower on a CPU, meant for those with more time or a GPU.
 */
import type { PipelineInput } from '../common/input';

export const DEMO_MODELS = ['tiny', 'smollm2'] as const;
export type DemoModel = (typeof DEMO_MODELS)[number];
export const DEMO_BENCHMARK = 'demo-heldout';

const TRAINING: Record<DemoModel, NonNullable<PipelineInput['training']>> = {
  tiny: { baseModel: 'builtin:tiny-llama', epochs: 10, batchSize: 8, learningRate: 3e-3, saveSteps: 100 },
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
  runId: string;
  epochs?: number;
}): PipelineInput {
  const training = TRAINING[args.model];
  return {
    dataset: args.dataset,
    runId: args.runId,
    training: { ...training, ...(args.epochs !== undefined && { epochs: args.epochs }) },
    // The tiny model never learned to write the space after "Assistant:" (the training template masks it).
    evaluation: {
      benchmarks: [{ name: DEMO_BENCHMARK, uri: args.heldout }],
      maxNewTokens: 32,
      ...(args.model === 'tiny' && { assistantMarker: 'training' as const }),
    },
  };
}
