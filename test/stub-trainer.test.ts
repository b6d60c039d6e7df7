import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { after, before, describe, it } from 'mocha';
import { runTrainerProcess, type TrainerEvent, type TrainerModule } from '../activities/python/trainer-process';
import { STUB_PYTHON } from './helpers/stub-trainer';
import { demoRows } from './helpers/pipeline-harness';

const toJsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

/**
 * The stub trainer of the workflow-shape tests keeps the real one's contract: every line it writes passes the
 * protocol check of runTrainerProcess, it refuses a config outside schema/trainer-config.schema.json, and it leaves the
 * real trainer's layout (checkpoints at save_steps and at the last step, final/ with the last checkpoint's weights).
 */
describe('the stub trainer', () => {
  const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'pift-stub-trainer-'));
    await writeFile(join(work, 'train.jsonl'), toJsonl(demoRows('train').slice(0, 10)));
  });
  after(() => rm(work, { recursive: true, force: true }));

  const run = <M extends TrainerModule>(module: M, config: object): Promise<Array<TrainerEvent<M>>> =>
    mock.run(async () => {
      const configPath = join(work, `${module}.json`);
      await writeFile(configPath, JSON.stringify(config));
      const events: Array<TrainerEvent<M>> = [];
      await runTrainerProcess({
        python: STUB_PYTHON,
        module,
        configPath,
        cwd: work,
        env: process.env,
        progressTimeoutMs: 60_000,
        heartbeat: () => undefined,
        onEvent: (e) => void events.push(e),
      });
      return events;
    });

  const trainConfig = (name: string, extra: object = {}) => ({
    train_file: join(work, 'train.jsonl'),
    final_dir: join(work, name, 'final'),
    output_dir: join(work, name, 'checkpoints'),
    model_name_or_path: 'builtin:tiny-llama',
    resume_from_checkpoint: null,
    parent_pid: process.pid,
    max_length: 256,
    model_seed: 0,
    max_steps: 5,
    per_device_train_batch_size: 2,
    gradient_accumulation_steps: 1,
    learning_rate: 3e-3,
    weight_decay: 0.1,
    adam_beta1: 0.9,
    adam_beta2: 0.95,
    max_grad_norm: 1,
    lr_scheduler_type: 'cosine',
    warmup_ratio: 0.1,
    seed: 3517,
    save_strategy: 'steps',
    save_steps: 2,
    logging_steps: 1,
    gradient_checkpointing: false,
    report_to: 'none',
    ...extra,
  });

  it('trains in the real layout, and resumes from a checkpoint to the same final weights', async () => {
    const events = await run('pift.train', trainConfig('whole'));
    assert.deepEqual(
      events.map((e) => e.event),
      ['start', ...Array(5).fill('progress'), 'done'].flatMap((e, i) =>
        // checkpoints after steps 2 and 4, and at the last step
        [2, 4, 5].includes(i) ? [e, 'checkpoint'] : [e],
      ),
    );
    const done = events.at(-1)!;
    assert.ok(done.event === 'done' && done.total_steps === 5 && done.loss_last! < done.loss_first!);
    const checkpoints = join(work, 'whole', 'checkpoints');
    assert.deepEqual((await readdir(checkpoints)).sort(), [
      'checkpoint-2',
      'checkpoint-4',
      'checkpoint-5',
      'metrics.jsonl',
    ]);
    const weights = (dir: string) => readFile(join(dir, 'model.safetensors'), 'utf8');
    const final = await weights(join(work, 'whole', 'final'));
    assert.equal(final, await weights(join(checkpoints, 'checkpoint-5')));

    const resumed = await run(
      'pift.train',
      trainConfig('resumed', { resume_from_checkpoint: join(checkpoints, 'checkpoint-4') }),
    );
    assert.deepEqual(resumed[0], { ...resumed[0], event: 'start', resumed_from_step: 4 });
    assert.equal(await weights(join(work, 'resumed', 'final')), final);
  });

  it('refuses a config outside the trainer-config schema as bad input naming the field', async () => {
    await assert.rejects(
      run('pift.train', trainConfig('bad', { warmup_ratio: 1 })),
      (err: unknown) => err instanceof ApplicationFailure && err.nonRetryable && /warmup_ratio/.test(err.message),
    );
  });

  it('answers every prompt, keeping the answers an earlier attempt wrote', async () => {
    const prompts = join(work, 'prompts.jsonl');
    await writeFile(prompts, toJsonl(demoRows('heldout').slice(0, 3)));
    const output = join(work, 'answers.jsonl');
    const config = { model_dir: join(work, 'whole', 'final'), input_file: prompts, output_file: output };
    await run('pift.generate', { ...config, max_length: 256 });
    const answers = await readFile(output, 'utf8');
    await writeFile(output, answers.split('\n').slice(0, 2).join('\n') + '\n');
    const again = await run('pift.generate', { ...config, max_length: 256 });
    assert.deepEqual(again[0], { event: 'start', total: 3, already_done: 2 });
    assert.equal(await readFile(output, 'utf8'), answers);
  });
});
