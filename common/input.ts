// The workflow's one JSON input: its shape, its defaults (in the JSON schema, the single place they live),
// and the few derived numbers the workflow needs. Workflow-safe: no Node built-ins here.

export interface ScorerOptions {
  /** 'auto' uses the OpenAI-compatible endpoint when the worker's environment configures one, else the offline scorer. */
  kind: 'auto' | 'openai' | 'offline';
  /** Judge model for scoring; unset = the worker's PIFT_SCORER_MODEL, else the paper's gpt-4-0613. */
  model?: string;
  concurrency: number;
  /** Extra asks when an answer cannot be parsed (transport retries are the client's own). */
  parseRetries: number;
  requestRetries: number;
  timeoutSeconds: number;
  /** Fail the step (non-retryable) when more than this fraction of rows stays unparseable. */
  maxFailedFraction: number;
}

export interface StageOptions {
  count: number;
  /** 'random' is the paper's control: equal stages of randomly mixed difficulty. */
  rule: 'thresholds' | 'quantiles' | 'random';
  /** count-1 ascending cut points; stage k holds t[k-2] <= score < t[k-1]. Default: the paper's 1.5 / 3.5. */
  thresholds: number[];
  allowEmpty: boolean;
  seed: number;
}

export interface TrainingOptions {
  /** 'builtin:tiny-llama' (built from a config in the repo, no download) or a local directory of HF weights. */
  baseModel: string;
  epochs: number;
  /** Per-device batch; defaults depend on the base model (see resolveTrainingDefaults). */
  learningRate?: number;
  batchSize?: number;
  gradientAccumulation?: number;
  maxLength?: number;
  warmupRatio: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  maxGradNorm: number;
  scheduler: string;
  seed: number;
  saveSteps: number;
  /** Checkpoints kept in the store per training run (the newest ones). */
  keepCheckpoints: number;
  bf16: 'auto' | boolean;
  gradientCheckpointing: boolean;
  /** A trainer that prints no progress for this long is killed and retried. */
  progressTimeout: string;
  heartbeatTimeout: string;
  /** After a cancel, how long the trainer may take to save its checkpoint before it is killed. */
  stopGracePeriod: string;
  maxAttempts: number;
}

export interface BaselineOptions {
  /** 'train': One-off IFT on all rows, same total steps; 'existing': use `checkpoint`; 'skip': no evaluation. */
  mode: 'train' | 'existing' | 'skip';
  checkpoint?: string;
}

export interface BenchmarkRef {
  name: string;
  uri: string;
}

export interface EvaluationOptions {
  /** Prompt sets to judge on. Empty = a seeded held-out split of the dataset (with reference answers). */
  benchmarks: BenchmarkRef[];
  heldoutFraction: number;
  heldoutMax: number;
  judge: 'auto' | 'openai' | 'offline';
  judgeModel?: string;
  concurrency: number;
  /** Each stage's model against the same baseline (the paper's per-stage curve), or only the last stage. */
  perStage: boolean;
  /** The paper's generation length, counting the prompt. */
  maxLength: number;
  maxNewTokens?: number;
}

export interface PipelineInput {
  dataset: string;
  datasetFormat?: 'auto' | 'alpaca-jsonl' | 'alpaca-json';
  runId?: string;
  store?: string;
  gpuTaskQueue?: string;
  scorer?: Partial<ScorerOptions>;
  stages?: Partial<StageOptions>;
  training?: Partial<TrainingOptions>;
  baseline?: Partial<BaselineOptions>;
  evaluation?: Partial<EvaluationOptions>;
}

export interface ResolvedInput {
  dataset: string;
  datasetFormat: 'auto' | 'alpaca-jsonl' | 'alpaca-json';
  runId: string;
  store: string;
  gpuTaskQueue: string;
  scorer: ScorerOptions;
  stages: StageOptions;
  training: Required<Omit<TrainingOptions, 'bf16'>> & { bf16: 'auto' | boolean };
  baseline: BaselineOptions;
  evaluation: EvaluationOptions;
}

const duration = { type: 'string', pattern: '^\\d+(\\.\\d+)?\\s*(ms|s|m|h|d|seconds?|minutes?|hours?|days?)$' };
const positiveInt = { type: 'integer', minimum: 1 };

/** JSON schema of PipelineInput; `default`s here are the defaults of the whole product. */
export const pipelineInputSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['dataset'],
  properties: {
    dataset: { type: 'string', minLength: 1 },
    datasetFormat: { enum: ['auto', 'alpaca-jsonl', 'alpaca-json'], default: 'auto' },
    runId: { type: 'string', minLength: 1, maxLength: 128 },
    store: { type: 'string', minLength: 1 },
    gpuTaskQueue: { type: 'string', minLength: 1, default: 'pift-gpu' },
    scorer: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        kind: { enum: ['auto', 'openai', 'offline'], default: 'auto' },
        model: { type: 'string', minLength: 1 },
        concurrency: { ...positiveInt, maximum: 256, default: 8 },
        parseRetries: { type: 'integer', minimum: 0, maximum: 10, default: 2 },
        requestRetries: { type: 'integer', minimum: 0, maximum: 20, default: 6 },
        timeoutSeconds: { type: 'number', exclusiveMinimum: 0, default: 120 },
        maxFailedFraction: { type: 'number', minimum: 0, maximum: 1, default: 0.01 },
      },
    },
    stages: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        count: { ...positiveInt, maximum: 20, default: 3 },
        rule: { enum: ['thresholds', 'quantiles', 'random'], default: 'thresholds' },
        thresholds: { type: 'array', items: { type: 'number' }, default: [1.5, 3.5] },
        allowEmpty: { type: 'boolean', default: false },
        seed: { type: 'integer', default: 3517 },
      },
    },
    training: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        baseModel: { type: 'string', minLength: 1, default: 'builtin:tiny-llama' },
        epochs: { ...positiveInt, default: 3 },
        learningRate: { type: 'number', exclusiveMinimum: 0 },
        batchSize: positiveInt,
        gradientAccumulation: positiveInt,
        maxLength: { type: 'integer', minimum: 32 }, // the trainer's MIN_MAX_LENGTH (trainer/pift/config.py)
        warmupRatio: { type: 'number', minimum: 0, maximum: 1, default: 0.1 },
        weightDecay: { type: 'number', minimum: 0, default: 0.1 },
        adamBeta1: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.9 },
        adamBeta2: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.95 },
        maxGradNorm: { type: 'number', exclusiveMinimum: 0, default: 1.0 },
        scheduler: { type: 'string', default: 'cosine' },
        seed: { type: 'integer', default: 3517 },
        saveSteps: { ...positiveInt, default: 50 },
        keepCheckpoints: { ...positiveInt, default: 2 },
        bf16: { anyOf: [{ const: 'auto' }, { type: 'boolean' }], default: 'auto' },
        gradientCheckpointing: { type: 'boolean', default: false },
        progressTimeout: { ...duration, default: '30 minutes' },
        heartbeatTimeout: { ...duration, default: '2 minutes' },
        stopGracePeriod: { ...duration, default: '10 minutes' },
        maxAttempts: { ...positiveInt, default: 20 },
      },
    },
    baseline: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        mode: { enum: ['train', 'existing', 'skip'], default: 'train' },
        checkpoint: { type: 'string', minLength: 1 },
      },
    },
    evaluation: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        benchmarks: {
          type: 'array',
          default: [],
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'uri'],
            properties: {
              name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' },
              uri: { type: 'string', minLength: 1 },
            },
          },
        },
        heldoutFraction: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.1 },
        heldoutMax: { ...positiveInt, default: 200 },
        judge: { enum: ['auto', 'openai', 'offline'], default: 'auto' },
        judgeModel: { type: 'string', minLength: 1 },
        concurrency: { ...positiveInt, maximum: 256, default: 8 },
        perStage: { type: 'boolean', default: true },
        maxLength: { type: 'integer', minimum: 16, default: 1024 },
        maxNewTokens: positiveInt,
      },
    },
  },
} as const;

/**
 * Paper's optimisation settings for real pretrained models (lr 5e-6, 16 per device, max length 2048); the builtin
 * tiny model is trained from scratch on a CPU, where those values would learn nothing in minutes.
 */
export function resolveTrainingDefaults(t: TrainingOptions): ResolvedInput['training'] {
  const tiny = t.baseModel.startsWith('builtin:');
  return {
    ...t,
    learningRate: t.learningRate ?? (tiny ? 3e-3 : 5e-6),
    batchSize: t.batchSize ?? (tiny ? 8 : 16),
    gradientAccumulation: t.gradientAccumulation ?? 1,
    maxLength: t.maxLength ?? (tiny ? 256 : 2048),
  };
}

/** Optimizer steps the HF Trainer takes for `rows` rows: ceil(ceil(rows / batch) / accumulation) per epoch. */
export function optimizerSteps(
  rows: number,
  t: Pick<ResolvedInput['training'], 'batchSize' | 'gradientAccumulation' | 'epochs'>,
): number {
  const perEpoch = Math.ceil(Math.ceil(rows / t.batchSize) / t.gradientAccumulation);
  return Math.max(1, perEpoch) * t.epochs;
}

/** Run ids become store key prefixes: nothing that could leave the run's prefix. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export function runIdProblem(runId: string): string | undefined {
  if (!RUN_ID_PATTERN.test(runId) || runId.includes('..')) {
    return `runId "${runId}" must be 1-128 characters of letters, digits, '.', '_' or '-', start with a letter or digit, and contain no ".."`;
  }
  return undefined;
}
