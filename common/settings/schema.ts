// The workflow's one JSON input, defined once: its TypeScript types (Static), validation, defaults, and the
// documentation the README table and schema/pipeline-input.schema.json are generated from (`npm run schema`).
// Workflow-safe: no Node built-ins here.
import { Type, type Static } from '@sinclair/typebox';
import { optional, required, stringEnum, withDefault, type Filled, type Prettify } from './define';
import * as c from './constraints';
import { CPU_TASK_QUEUE, GPU_TASK_QUEUE } from '../constants';
import { DEFAULT_STORE_DIR, MAX_ROW_BYTES, PAPER_JUDGE_MODEL, TRAINING_PRESETS } from './constants';

const duration = () => Type.String({ pattern: '^\\d+(\\.\\d+)?\\s*(ms|s|m|h|d|seconds?|minutes?|hours?|days?)$' });
const llmKind = () => stringEnum(['auto', 'openai', 'offline'] as const);
const { paper, tiny } = TRAINING_PRESETS;
const num = (n: number) => (n !== 0 && Math.abs(n) < 1e-3 ? n.toExponential() : String(n));
const byModel = (k: keyof typeof paper) =>
  paper[k] === tiny[k] ? num(paper[k]) : `${num(paper[k])} (builtin tiny model: ${num(tiny[k])})`;

export const ScorerSchema = Type.Object(
  {
    kind: withDefault(llmKind(), 'auto', {
      source: 'ours',
      description: '`auto` uses the OpenAI-compatible endpoint when the worker configures one, else the offline scorer',
    }),
    model: optional(Type.String({ minLength: 1 }), {
      source: 'repo',
      defaultText: `worker's \`PIFT_SCORER_MODEL\`, else \`${PAPER_JUDGE_MODEL}\``,
      description: "judge model for scoring (the paper's judge)",
    }),
    concurrency: withDefault(Type.Integer({ minimum: 1, maximum: 256 }), 8, {
      source: 'ours',
      description: 'scoring requests in flight',
    }),
    parseRetries: withDefault(Type.Integer({ minimum: 0, maximum: 10 }), 2, {
      source: 'ours',
      description: 'extra asks when an answer cannot be parsed',
    }),
    requestRetries: withDefault(Type.Integer({ minimum: 0, maximum: 20 }), 6, {
      source: 'ours',
      description: "transport retries of one request (the client's own)",
    }),
    timeoutSeconds: withDefault(Type.Number({ exclusiveMinimum: 0 }), 120, {
      source: 'ours',
      description: 'timeout of one request',
    }),
    maxFailedFraction: withDefault(Type.Number({ minimum: 0, maximum: 1 }), 0.01, {
      source: 'ours',
      description: 'above this fraction of unparseable rows the step fails; failed rows are re-asked on resume',
    }),
  },
  { additionalProperties: false },
);

export const StagesSchema = Type.Object(
  {
    count: withDefault(Type.Integer({ minimum: 1, maximum: 20 }), 3, {
      source: 'paper',
      description: 'number of stages of increasing difficulty',
    }),
    rule: withDefault(stringEnum(['thresholds', 'quantiles', 'random'] as const), 'thresholds', {
      source: 'paper',
      description:
        "`thresholds` (score cut points), `quantiles` (equal-size stages), or `random` (the paper's control: stages of mixed difficulty)",
    }),
    thresholds: withDefault(Type.Array(Type.Number()), [1.5, 3.5], {
      source: 'unverified',
      description:
        "count-1 ascending cut points; stage k holds t[k-2] <= score < t[k-1]; 3.5 is the released data's [repo], 1.5 unverified",
    }),
    allowEmpty: withDefault(Type.Boolean(), false, {
      source: 'ours',
      description: 'an empty stage is an error unless allowed',
    }),
    seed: withDefault(c.seed(), 3517, {
      source: 'ours',
      description: 'seed of the held-out split, the shuffle within each stage and the `random` rule',
    }),
  },
  { additionalProperties: false },
);

export const TrainingSchema = Type.Object(
  {
    baseModel: withDefault(Type.String({ minLength: 1 }), 'builtin:tiny-llama', {
      source: 'ours',
      description:
        '`builtin:tiny-llama` (built from a config in the repo, no download) or a local directory of HF weights',
    }),
    epochs: withDefault(c.positiveInt(), 3, {
      source: 'ours',
      description: "epochs per stage (the released script's 20 is suspect)",
    }),
    learningRate: optional(c.learningRate(), {
      source: 'repo',
      defaultText: byModel('learningRate'),
      description: 'peak learning rate',
    }),
    batchSize: optional(c.positiveInt(), {
      source: 'repo',
      defaultText: byModel('batchSize'),
      description: 'sequences per device per step',
    }),
    gradientAccumulation: optional(c.positiveInt(), {
      source: 'repo',
      defaultText: byModel('gradientAccumulation'),
      description: 'steps accumulated per optimizer step',
    }),
    maxLength: optional(c.maxLength(), {
      source: 'repo',
      defaultText: byModel('maxLength'),
      description: 'tokens per training sequence',
    }),
    warmupRatio: withDefault(c.unitInterval(), 0.1, { source: 'repo', description: 'linear warmup, share of steps' }),
    weightDecay: withDefault(c.weightDecay(), 0.1, { source: 'repo', description: 'AdamW weight decay' }),
    adamBeta1: withDefault(c.unitInterval(), 0.9, { source: 'repo', description: 'AdamW beta1' }),
    adamBeta2: withDefault(c.unitInterval(), 0.95, { source: 'repo', description: 'AdamW beta2' }),
    maxGradNorm: withDefault(c.maxGradNorm(), 1.0, { source: 'repo', description: 'gradient clipping norm' }),
    scheduler: withDefault(c.scheduler(), 'cosine', { source: 'repo', description: 'learning-rate schedule' }),
    seed: withDefault(c.seed(), 3517, { source: 'repo', description: "training seed (and the tiny model's init)" }),
    saveSteps: withDefault(c.positiveInt(), 50, { source: 'ours', description: 'optimizer steps between checkpoints' }),
    keepCheckpoints: withDefault(c.positiveInt(), 2, {
      source: 'ours',
      description: 'checkpoints kept in the store per training run (the newest ones)',
    }),
    bf16: withDefault(Type.Union([Type.Literal('auto'), Type.Boolean()]), 'auto', {
      source: 'ours',
      description: '`auto`: bf16 where CUDA supports it (the paper trains in bf16)',
    }),
    gradientCheckpointing: withDefault(Type.Boolean(), false, {
      source: 'ours',
      description: 'trade compute for memory (the paper uses it on its large models)',
    }),
    progressTimeout: withDefault(duration(), '30 minutes', {
      source: 'ours',
      description: 'a trainer that prints no progress for this long is killed and retried',
    }),
    heartbeatTimeout: withDefault(duration(), '2 minutes', {
      source: 'ours',
      description: 'a GPU worker silent for this long is presumed dead and the stage retried',
    }),
    stopGracePeriod: withDefault(duration(), '10 minutes', {
      source: 'ours',
      description: 'after a cancel, time for the trainer to save a checkpoint before it is killed',
    }),
    maxAttempts: withDefault(c.positiveInt(), 20, { source: 'ours', description: 'attempts per training run' }),
  },
  { additionalProperties: false },
);

export const BaselineSchema = Type.Object(
  {
    mode: withDefault(stringEnum(['train', 'existing', 'skip'] as const), 'train', {
      source: 'paper',
      description:
        '`train`: One-off IFT on all rows with the same total steps; `existing`: use `checkpoint`; `skip`: no evaluation',
    }),
    checkpoint: optional(Type.String({ minLength: 1 }), {
      description: 'model URI or local directory of the baseline, when `mode` is `existing`',
    }),
  },
  { additionalProperties: false },
);

export const BenchmarkRefSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' }),
    uri: Type.String({ minLength: 1 }),
  },
  { additionalProperties: false },
);

export const EvaluationSchema = Type.Object(
  {
    benchmarks: withDefault(Type.Array(BenchmarkRefSchema), [], {
      source: 'ours',
      description:
        'prompt sets to judge on, `[{ "name": "vicuna", "uri": "…" }]`; empty = a seeded held-out split of the dataset',
    }),
    heldoutFraction: withDefault(c.unitInterval(), 0.1, {
      source: 'ours',
      description: 'share of the dataset held out for evaluation when no benchmarks are given',
    }),
    heldoutMax: withDefault(c.positiveInt(), 200, { source: 'ours', description: 'at most this many held-out rows' }),
    judge: withDefault(llmKind(), 'auto', {
      source: 'ours',
      description: '`openai` when the worker has an endpoint, else `offline`',
    }),
    judgeModel: optional(Type.String({ minLength: 1 }), {
      source: 'repo',
      defaultText: `worker's \`PIFT_JUDGE_MODEL\`, else \`${PAPER_JUDGE_MODEL}\``,
      description: 'pairwise judge; temperature 0, top_p 1, max_tokens 256',
    }),
    concurrency: withDefault(Type.Integer({ minimum: 1, maximum: 256 }), 8, {
      source: 'ours',
      description: 'judge requests in flight',
    }),
    perStage: withDefault(Type.Boolean(), true, {
      source: 'repo',
      description: "each stage's model against the same baseline (the paper's per-stage curve), or only the last",
    }),
    maxLength: withDefault(c.maxLength(), 1024, {
      source: 'repo',
      description: 'generation length counting the prompt; greedy decoding',
    }),
    maxNewTokens: optional(c.positiveInt(), { defaultText: 'unset', description: 'cap on answer tokens' }),
    answerExtraction: withDefault(stringEnum(['trimmed', 'paper'] as const), 'trimmed', {
      source: 'ours',
      description:
        '`trimmed`: the generated text up to `</s>`, stripped; `paper`: the released code\'s extraction (text after the first "Assistant:" up to the next, not stripped) and input handling (a bare "\\n" after an empty input for benchmarks named `anthropic…` / `oasst…`)',
    }),
    assistantMarker: withDefault(stringEnum(['paper', 'training'] as const), 'paper', {
      source: 'repo',
      description:
        '`paper`: generation prompts end with "\\nAssistant:" as released (the model writes the space); `training`: with "\\nAssistant: " as in the training template, for models trained from scratch, which never learn to write that masked space',
    }),
    controls: withDefault(Type.Array(stringEnum(['random', 'descending'] as const), { uniqueItems: true }), [], {
      source: 'ours',
      description:
        "extra orderings trained from the same start and judged against the same baseline: `random` (the paper's control: stages of random difficulty with the real stages' sizes) and `descending` (hardest stage first)",
    }),
  },
  { additionalProperties: false },
);

export const PipelineInputSchema = Type.Object(
  {
    dataset: required(Type.String({ minLength: 1 }), {
      description:
        "Alpaca JSONL or JSON (`instruction`, `input`, `output`, optional `id`), UTF-8, plain or gzip: `s3://…`, `file://…` or a path under the worker's `PIFT_FILE_ROOTS`",
    }),
    datasetFormat: withDefault(stringEnum(['auto', 'alpaca-jsonl', 'alpaca-json'] as const), 'auto', {
      source: 'ours',
      description: '`auto` tells JSONL from a JSON array by content',
    }),
    maxRowBytes: withDefault(Type.Integer({ minimum: 1 }), MAX_ROW_BYTES, {
      source: 'ours',
      description:
        'largest dataset or benchmark row (JSONL line, JSON array element) in UTF-8 bytes; a larger one fails the run naming its line',
    }),
    runId: optional(Type.String({ minLength: 1, maxLength: 128 }), {
      defaultText: 'the workflow id',
      description: "letters, digits, `.`, `_`, `-`; becomes the run's store prefix",
    }),
    store: optional(Type.String({ minLength: 1 }), {
      source: 'worker',
      defaultText: `worker's \`PIFT_STORE\`, else \`${DEFAULT_STORE_DIR}\``,
      description: "`s3://bucket/prefix` or a directory under the worker's `PIFT_FILE_ROOTS`",
    }),
    gpuTaskQueue: optional(Type.String({ minLength: 1 }), {
      source: 'worker',
      defaultText: `worker's \`PIFT_GPU_TASK_QUEUE\`, else \`${GPU_TASK_QUEUE}\``,
      description: 'task queue of the GPU workers that train and generate',
    }),
    scorer: withDefault(ScorerSchema, {}, { description: 'difficulty scoring with an LLM judge' }),
    stages: withDefault(StagesSchema, {}, { description: 'how scored rows are split into stages' }),
    training: withDefault(TrainingSchema, {}, { description: 'fine-tuning of each stage and of the baseline' }),
    baseline: withDefault(BaselineSchema, {}, { description: 'the One-off baseline every stage is judged against' }),
    evaluation: withDefault(EvaluationSchema, {}, { description: 'generation and pairwise judging' }),
  },
  {
    additionalProperties: false,
    title: 'Phased IFT pipeline input',
    description: `Input of the phasedIftPipeline workflow (started on the \`${CPU_TASK_QUEUE}\` task queue).`,
  },
);

export type PipelineInput = Static<typeof PipelineInputSchema>;
export type ScorerOptions = Filled<typeof ScorerSchema>;
export type StageOptions = Filled<typeof StagesSchema>;
export type TrainingOptions = Filled<typeof TrainingSchema>;
export type BaselineOptions = Filled<typeof BaselineSchema>;
export type BenchmarkRef = Static<typeof BenchmarkRefSchema>;
export type EvaluationOptions = Filled<typeof EvaluationSchema>;
/** Training settings once the base model's preset filled the four that depend on it. */
export type ResolvedTraining = Prettify<
  TrainingOptions & Required<Pick<TrainingOptions, 'learningRate' | 'batchSize' | 'gradientAccumulation' | 'maxLength'>>
>;

/** The input once validated and completed: what every step receives. */
export interface ResolvedInput {
  dataset: string;
  datasetFormat: Filled<typeof PipelineInputSchema>['datasetFormat'];
  maxRowBytes: number;
  runId: string;
  store: string;
  gpuTaskQueue: string;
  scorer: ScorerOptions;
  stages: StageOptions;
  training: ResolvedTraining;
  baseline: BaselineOptions;
  evaluation: EvaluationOptions;
}
