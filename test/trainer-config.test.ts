import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'mocha';
import { InvalidDataError } from '../common/failures';
import { TrainerConfigSchema, TrainerLocalSchema } from '../common/settings/trainer';
import { settingsValidator } from '../common/settings/validator';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import {
  earlierTrainingIdentities,
  trainerConfig,
  trainerSettings,
  trainerLaunch,
  trainingIdentity,
} from '../activities/train/trainer-config';
import { optimizerSteps } from '../common/settings/derive';
import type { ResolvedTraining } from '../common/settings/schema';

const trainingOf = (training: Record<string, unknown> = {}): ResolvedTraining =>
  resolvePipelineInput({ dataset: 'x', training }, 'wf', { PIFT_STORE: 's3://b' }).training;
const local = {
  train_file: '/scratch/a/train.jsonl',
  final_dir: '/scratch/a/final',
  output_dir: '/scratch/a/checkpoints',
  model_name_or_path: '/scratch/a/init-model',
  resume_from_checkpoint: null,
  parent_pid: 4242,
};
const run = (training: ResolvedTraining, more: Record<string, unknown> = {}) => ({
  name: 'stage-1',
  dataSha256: 'a'.repeat(64),
  initModel: 'builtin:tiny-llama',
  maxSteps: 30,
  training,
  ...more,
});

describe('trainer config', () => {
  const validate = settingsValidator().compile(TrainerConfigSchema);

  it('is what the trainer schema describes, for every kind of training input', async () => {
    const fromFile = settingsValidator().compile(
      JSON.parse(await readFile(join(__dirname, '..', 'schema/trainer-config.schema.json'), 'utf8')),
    );
    for (const training of [
      {},
      { baseModel: '/models/llama' },
      { bf16: true, gradientCheckpointing: true },
      { bf16: false, scheduler: 'linear', maxLength: 32, warmupRatio: 0 },
    ]) {
      const config = trainerConfig(trainingOf(training), 12, local);
      assert.ok(validate(config), JSON.stringify(validate.errors));
      assert.ok(fromFile(config), JSON.stringify(fromFile.errors));
    }
    const auto = trainerConfig(trainingOf({}), 12, local);
    assert.equal('bf16' in auto, false, "'auto' leaves bf16 to the trainer");
    assert.equal(trainerConfig(trainingOf({ bf16: false }), 12, local).bf16, false);
    assert.equal(auto.max_length, 256);
    assert.equal(auto.learning_rate, 3e-3);
    assert.equal(auto.max_steps, 12);
  });

  it('refuses a max length the trainer would refuse, in the input already', () => {
    for (const [training, field] of [
      [{ maxLength: 16 }, /input\.training\.maxLength: must be >= 32/],
      [{ maxLength: 31 }, /input\.training\.maxLength/],
      [{ warmupRatio: 1 }, /input\.training\.warmupRatio/],
      [{ scheduler: 'cosine_with_min_lr' }, /input\.training\.scheduler/],
    ] as const) {
      assert.throws(
        () => trainingOf(training),
        (err: unknown) => err instanceof InvalidDataError && field.test(err.message),
      );
    }
    assert.throws(
      () => resolvePipelineInput({ dataset: 'x', evaluation: { maxLength: 16 } }, 'wf', {}),
      /input\.evaluation\.maxLength: must be >= 32/,
    );
    assert.ok(!validate(trainerConfig({ ...trainingOf({}), maxLength: 31 }, 12, local)));
  });

  it('splits into machine-local fields and the settings that decide the weights', () => {
    // The optional keys are set so that every key appears.
    const all = trainingOf({ bf16: true, conversationTemplate: 'paper', saveEveryMinutes: 30, lora: {} });
    const config = trainerConfig(all, 12, local);
    const localKeys = Object.keys(TrainerLocalSchema.properties);
    const settingKeys = Object.keys(trainerSettings(all, 12));
    assert.deepEqual([...localKeys, ...settingKeys].sort(), Object.keys(config).sort());
    assert.deepEqual(Object.keys(TrainerConfigSchema.properties).sort(), Object.keys(config).sort());
  });
});

describe('training identity', () => {
  const base = trainingIdentity(run(trainingOf()));

  it('ignores settings the trainer does not receive, known or not yet invented', () => {
    for (const training of [
      { progressTimeout: '1 hour' },
      { heartbeatTimeout: '10 minutes' },
      { stopGracePeriod: '1 minute' },
      { maxAttempts: 3 },
      { keepCheckpoints: 9 },
      { keepOptimizerInFinal: true },
    ]) {
      assert.equal(trainingIdentity(run(trainingOf(training))), base, JSON.stringify(training));
    }
    const withNewSetting = { ...trainingOf(), maxRowBytes: 1000 } as ResolvedTraining;
    assert.equal(trainingIdentity(run(withNewSetting)), base);
  });

  it('changes with everything the trainer receives, and with its inputs', () => {
    const changed = [
      trainingIdentity(run(trainingOf({ learningRate: 1e-3 }))),
      trainingIdentity(run(trainingOf({ maxLength: 128 }))),
      trainingIdentity(run(trainingOf({ seed: 1 }))),
      trainingIdentity(run(trainingOf({ bf16: false }))),
      trainingIdentity(run(trainingOf({ bf16: true }))),
      trainingIdentity(run(trainingOf({ saveSteps: 7 }))),
      trainingIdentity(run(trainingOf({ scheduler: 'linear' }))),
      trainingIdentity(run(trainingOf(), { maxSteps: 31 })),
      trainingIdentity(run(trainingOf(), { name: 'one-off' })),
      trainingIdentity(run(trainingOf(), { dataSha256: 'b'.repeat(64) })),
      trainingIdentity(run(trainingOf(), { initModel: 's3://b/r/train/stage-1/final' })),
    ];
    assert.equal(new Set([base, ...changed]).size, changed.length + 1);
  });
});

describe('training identity of earlier versions', () => {
  // Values computed by the previous release's own code (its resolvePipelineInput and train-stage hash) for the
  // same inputs: a run it started must find its finished stages and checkpoints after an upgrade.
  const earlier = (training: Record<string, unknown>) =>
    earlierTrainingIdentities({
      name: 'stage-2',
      dataSha256: 'ab'.repeat(32),
      initModel: 's3://b/run/train/stage-1/final',
      maxSteps: 78,
      training: trainingOf(training),
    });

  it('reproduces the format-1 hashes of the previous release', () => {
    assert.deepEqual(earlier({}), ['09f0c87720389f00b969e59a5c66f5b847bbf7f23b731b3267de465ec35d1e7b']);
    // gradientAccumulation 1 was that release's default for every model (now derived from globalBatchSize).
    assert.deepEqual(
      earlier({ baseModel: '/models/llama', epochs: 2, bf16: true, maxLength: 512, gradientAccumulation: 1 }),
      ['386b8aa290ee2c7713fc53584a7e3e43b0e9d7f694a4992cbb792499d81577a7'],
    );
  });

  it('differs from the current identity, which is what the manifests of new runs carry', () => {
    const input = {
      name: 'stage-2',
      dataSha256: 'ab'.repeat(32),
      initModel: 'x',
      maxSteps: 78,
      training: trainingOf(),
    };
    assert.ok(!earlierTrainingIdentities(input).includes(trainingIdentity(input)));
  });
});

describe('global batch', () => {
  it("derives gradient accumulation from the paper's global batch of 128", () => {
    const llama = trainingOf({ baseModel: '/models/llama' });
    assert.deepEqual([llama.batchSize, llama.globalBatchSize, llama.gradientAccumulation], [16, 128, 8]);
    const twoGpus = trainingOf({ baseModel: '/models/llama', processes: 2, batchSize: 8 });
    assert.equal(twoGpus.gradientAccumulation, 8);
    const eight = trainingOf({ baseModel: '/models/llama', processes: 8 });
    assert.equal(eight.gradientAccumulation, 1, 'the paper: 16 per GPU on 8 GPUs, no accumulation');
    assert.equal(trainingOf({ globalBatchSize: 32 }).gradientAccumulation, 4);
  });

  it('keeps the builtin tiny model at one batch per step, as before, whatever its batch size', () => {
    assert.deepEqual(
      [trainingOf().batchSize, trainingOf().gradientAccumulation, trainingOf().globalBatchSize],
      [8, 1, 8],
    );
    assert.equal(trainingOf({ batchSize: 4 }).gradientAccumulation, 1);
  });

  it('takes an explicit gradientAccumulation as an override', () => {
    const t = trainingOf({ baseModel: '/models/llama', gradientAccumulation: 2 });
    assert.deepEqual([t.gradientAccumulation, t.globalBatchSize], [2, 32]);
    assert.equal(trainingOf({ gradientAccumulation: 3, globalBatchSize: 24 }).gradientAccumulation, 3);
  });

  it('refuses a global batch the processes cannot split, naming the setting', () => {
    for (const [training, message] of [
      [
        { baseModel: '/models/llama', batchSize: 48 },
        /globalBatchSize: 128 \(the default\) is not a multiple of batchSize × processes = 48 × 1/,
      ],
      [
        { globalBatchSize: 12, processes: 2 },
        /globalBatchSize: 12 is not a multiple of batchSize × processes = 8 × 2 = 16/,
      ],
      [{ globalBatchSize: 16, gradientAccumulation: 3 }, /globalBatchSize: 16 disagrees with gradientAccumulation 3/],
    ] as const) {
      assert.throws(
        () => trainingOf(training),
        (err: unknown) =>
          err instanceof InvalidDataError && message.test(err.message) && err.message.includes('input.training'),
      );
    }
  });

  it('counts optimizer steps over all processes', () => {
    const t = trainingOf({ processes: 2, globalBatchSize: 16 });
    assert.equal(t.gradientAccumulation, 1);
    assert.equal(optimizerSteps(32, t), 2 * t.epochs);
    assert.equal(optimizerSteps(32, trainingOf({ globalBatchSize: 16 })), 2 * t.epochs);
  });

  it('keeps the identity of one process and changes it for several', () => {
    const one = trainingIdentity(run(trainingOf({ globalBatchSize: 16 })));
    assert.equal(trainingIdentity(run(trainingOf({ gradientAccumulation: 2 }))), one);
    assert.notEqual(trainingIdentity(run(trainingOf({ processes: 2, globalBatchSize: 16 }))), one);
    assert.equal(trainerLaunch(trainingOf()), undefined);
    assert.deepEqual(trainerLaunch(trainingOf({ processes: 2, distributed: 'fsdp' })), {
      processes: 2,
      distributed: 'fsdp',
    });
  });

  it("passes report_to through, 'none' by default", () => {
    assert.equal(trainerConfig(trainingOf(), 3, local).report_to, 'none');
    assert.deepEqual(trainerConfig(trainingOf({ reportTo: ['tensorboard'] }), 3, local).report_to, ['tensorboard']);
  });
});

describe('LoRA', () => {
  const validate = settingsValidator().compile(TrainerConfigSchema);

  it('reaches the trainer config with its defaults, and only when set', async () => {
    const fromFile = settingsValidator().compile(
      JSON.parse(await readFile(join(__dirname, '..', 'schema/trainer-config.schema.json'), 'utf8')),
    );
    const full = trainerConfig(trainingOf(), 12, local);
    assert.equal('lora' in full, false, 'full fine-tuning sends no lora key, so its identity is unchanged');
    const lora = trainerConfig(trainingOf({ lora: {} }), 12, local);
    assert.deepEqual(lora.lora, { r: 16, alpha: 32, dropout: 0.05, target_modules: 'all-linear' });
    const qlora = trainerConfig(
      trainingOf({ lora: { r: 8, alpha: 16, dropout: 0, targetModules: ['q_proj', 'v_proj'], quantize: '4bit' } }),
      12,
      local,
    );
    assert.deepEqual(qlora.lora, {
      r: 8,
      alpha: 16,
      dropout: 0,
      target_modules: ['q_proj', 'v_proj'],
      quantize: '4bit',
    });
    for (const config of [lora, qlora]) {
      assert.ok(validate(config), JSON.stringify(validate.errors));
      assert.ok(fromFile(config), JSON.stringify(fromFile.errors));
    }
  });

  it('changes the training identity when set, not otherwise', () => {
    const full = trainingIdentity(run(trainingOf()));
    const lora = trainingIdentity(run(trainingOf({ lora: {} })));
    assert.notEqual(lora, full);
    assert.notEqual(trainingIdentity(run(trainingOf({ lora: { r: 8 } }))), lora);
    assert.equal(trainingIdentity(run(trainingOf({ lora: { r: 16, alpha: 32 } }))), lora);
  });

  it('refuses bad LoRA settings in the input, naming the field', () => {
    for (const [training, field] of [
      [{ lora: { r: 0 } }, /input\.training\.lora\.r/],
      [{ lora: { dropout: 1 } }, /input\.training\.lora\.dropout/],
      [{ lora: { quantize: '8bit' } }, /input\.training\.lora\.quantize/],
      [{ lora: { rank: 4 } }, /input\.training\.lora/],
    ] as const) {
      assert.throws(
        () => trainingOf(training),
        (err: unknown) => err instanceof InvalidDataError && field.test(err.message),
        JSON.stringify(training),
      );
    }
  });
});
