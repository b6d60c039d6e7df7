// Inputs and results of the activities: only small references (URIs, counts, hashes, metrics) cross into history.
import type { ConvergenceFlag } from '../common/convergence';
import type { BenchmarkRef, ResolvedInput, ServingOptions } from '../common/settings/schema';
import type { StepCost } from './llm/cost-estimate';

export interface StepRef {
  runId: string;
  store: string;
}

export interface ScoreInput extends StepRef {
  dataset: string;
  datasetFormat: ResolvedInput['datasetFormat'];
  /** Absent unless the run maps field names. */
  datasetColumns?: ResolvedInput['datasetColumns'];
  /** `samples` and `cache` are absent in runs started before the settings existed: one sample, cache on. */
  scorer: Omit<ResolvedInput['scorer'], 'samples' | 'cache' | 'mode' | 'batchPollInterval' | 'batchResubmits'> & {
    samples?: number;
    cache?: boolean;
  };
  /** Absent in runs started before the setting existed: the schema's default applies. */
  maxRowBytes?: number;
  /** 'compare': the second scorer of `scorer.compareWith`, written under score/compare/ and not used to segment. */
  output?: 'compare';
}

/** `scorer.kind: "ifd"`: Instruction-Following Difficulty from the base model, on the GPU queue (trainer/pift/ifd.py). */
export interface IfdScoreInput extends ScoreInput {
  ifd: {
    /** The training's base model: IFD measures how hard each row is for the model about to learn it. */
    model: string;
    /** Rows are encoded and cut as training encodes them. */
    maxLength: number;
    modelSeed: number;
    conversationTemplate?: ResolvedInput['training']['conversationTemplate'];
    batchSize?: number;
    progressTimeout: string;
  };
}

/** How two scorers of the same rows agree: Spearman's rho over the rows both scored, and each one's histogram. */
export interface ScoreAgreement {
  spearman: number | null;
  /** Rows scored by both. */
  rows: number;
  primary: { scorer: string; histogram: Record<string, number> };
  secondary: { scorer: string; histogram: Record<string, number>; scoresUri: string };
}

export interface ScoreResult {
  /** Normalised rows (id, instruction, input, output; conversations also messages) as read from the dataset. */
  datasetUri: string;
  scoresUri: string;
  rows: number;
  scored: number;
  failed: number;
  /** Who scored: the model name, or the offline scorer's label. */
  scorer: string;
  offline: boolean;
  promptSha256: string;
  histogram: Record<string, number>;
  sha256: string;
  /** An online scorer's estimate (made before its first request) and this attempt's reported usage. */
  cost?: StepCost;
  /** With `scorer.compareWith`: added by the workflow after the second scorer ran. */
  agreement?: ScoreAgreement;
}

/** One line of scores.jsonl: keyed by example id, with who scored it and with which prompt. */
export interface ScoreRow {
  id: string;
  score: number | null;
  scorer: string;
  promptSha256: string;
  /** The judge's raw answer when it could not be parsed (never replaced by a made-up score). */
  raw?: string;
  error?: string;
  /** With `scorer.samples` > 1: each sample's score (null where it stayed unparseable) and raw answer; `score` is their mean. */
  samples?: Array<number | null>;
  answers?: string[];
}

export interface SegmentInput extends StepRef {
  score: Pick<ScoreResult, 'datasetUri' | 'scoresUri' | 'sha256'>;
  stages: ResolvedInput['stages'];
  /** Held-out split taken before staging; 0 when the user supplies benchmarks. */
  heldoutFraction: number;
  heldoutMax: number;
}

export interface StageSplit {
  stage: number;
  uri: string;
  rows: number;
  minScore: number | null;
  maxScore: number | null;
  sha256: string;
}

export interface SegmentResult {
  stages: StageSplit[];
  oneOff: { uri: string; rows: number; sha256: string };
  heldout?: { uri: string; rows: number };
  thresholds: number[];
  unscored: number;
  summaryUri: string;
}

export interface ExportInput extends StepRef {
  segment: SegmentResult;
}

export interface ExportResult {
  /** The export folder: stage files, dataset_info.json, axolotl snippets and a README. */
  uri: string;
  layout: 'alpaca' | 'messages';
  files: number;
}

export interface PrepareBenchmarksInput extends StepRef {
  benchmarks: BenchmarkRef[];
  heldout?: { uri: string };
  maxRowBytes?: number;
}

export interface PreparedBenchmark {
  name: string;
  uri: string;
  prompts: number;
  withReferences: number;
}

export interface TrainInput extends StepRef {
  /** 'stage-1'... or 'one-off'. */
  name: string;
  dataUri: string;
  dataSha256: string;
  /** 'builtin:…', a local directory, or the store URI of a previous training's final weights. */
  initModel: string;
  maxSteps: number;
  training: ResolvedInput['training'];
}

export interface TrainResult {
  name: string;
  modelUri: string;
  steps: number;
  lossFirst: number;
  lossLast: number;
  /** Step the last attempt resumed from (0 = from scratch); > 0 shows a checkpoint was used. */
  resumedFromStep: number;
  attempts: number;
  reused: boolean;
  /** 'bf16', 'fp16' or 'fp32': what the trainer chose for `training.bf16` on this worker's device. */
  precision?: string;
  /** Threads a trainer on a CPU used (`PIFT_CPU_THREADS`, default 1); absent on a GPU. */
  cpuThreads?: number;
}

export interface GenerateInput extends StepRef {
  /** 'stage-1'... or 'one-off'. */
  name: string;
  modelUri: string;
  benchmarks: PreparedBenchmark[];
  maxLength: number;
  maxNewTokens?: number;
  progressTimeout: string;
  /** 'paper': the released code's answer extraction and input handling; absent: trimmed answers. */
  answerExtraction?: 'paper';
  /** 'training': prompts end with the training template's "\nAssistant: "; absent: the paper's "\nAssistant:". */
  assistantMarker?: 'training';
  /** Conversation prompts in the template the models were trained with (`training.conversationTemplate`); absent: auto. */
  conversationTemplate?: 'auto' | 'model' | 'paper';
  /** `evaluation.serving`: answers through an OpenAI-compatible server the worker starts; absent: `pift.generate`. */
  serving?: ServingOptions;
}

export interface GenerateResult {
  name: string;
  answers: Record<string, string>;
  reused: boolean;
  /**
   * What generated the answers: `pift.generate` in the worker, or a server started on the model (`served`), named by
   * what its `GET /v1/models` says owns the model (`vllm`, `pift`). Absent in results written before it was recorded.
   */
  generatedBy?: 'pift.generate' | 'served';
  server?: string;
  /** With `served`: the precision the server decoded in, as it reported it (activities/generate/serving-process.ts). */
  servedDtype?: string;
}

export interface AccuracyCount {
  correct: number;
  /** Prompts of the benchmark that carry a reference. */
  checked: number;
  /** correct / checked, in [0, 1]. */
  accuracy: number;
}

export interface ModelAccuracy {
  benchmarks: Record<string, AccuracyCount>;
  /** Summed over the model's benchmarks. */
  total: AccuracyCount;
}

export interface OrderingPoint {
  /** Position in training order: 1 = the model after its first stage. */
  stage: number;
  model: string;
  /** Mean win rate over benchmarks, as in the table. */
  average: number;
  benchmarks: Record<string, number>;
}

type Judging = ResolvedInput['evaluation'];
/** Judging settings absent in runs started before they existed: re-asks on with 2 retries, no rate limit, no budget. */
type LaterJudging = 'reaskUnparseable' | 'parseRetries' | 'requestsPerMinute' | 'tokensPerMinute' | 'cache';
type JudgingBudget = 'pricePerMillionTokens' | 'maxCostUsd' | 'maxTokens';

/** The judging settings as `evaluation` names them (common/settings/schema.ts). */
export interface EvaluateInput
  extends
    StepRef,
    Pick<Judging, 'judge' | 'judgeModel' | 'concurrency'>,
    Partial<Pick<Judging, LaterJudging | JudgingBudget>> {
  benchmarks: PreparedBenchmark[];
  baseline: GenerateResult;
  candidates: GenerateResult[];
  /** With `evaluation.controls`: each ordering's candidate names in training order (`ascending` included). */
  orderings?: Record<string, string[]>;
}

export interface EvaluateResult {
  resultsUri: string;
  markdownUri: string;
  judge: string;
  offline: boolean;
  /** Win rate (signed, -50..+50) of each candidate per benchmark plus 'average'. */
  winRates: Record<string, Record<string, number>>;
  markdown: string;
  /** Exact-match accuracy of every model (baseline included), when some benchmark carries reference answers. */
  accuracy?: Record<string, ModelAccuracy>;
  /** With `evaluation.controls`: the per-stage curve of each ordering. */
  orderings?: Record<string, OrderingPoint[]>;
  /** Only when a training did not converge: which, why, and the models whose win rate is unreliable. */
  convergence?: { flags: ConvergenceFlag[]; unreliable: string[] };
  /** An online judge's estimate (made before its first request) and this attempt's reported usage. */
  cost?: StepCost;
}

/** What the trainer reports, carried by the activity's heartbeat details (clients read them with describe()). */
export interface TrainerProgress {
  name: string;
  step: number;
  totalSteps: number;
  loss?: number;
  learningRate?: number;
  gradNorm?: number;
  tokensPerSecond?: number;
  /** Seconds left at the rate of this attempt so far. */
  etaSeconds?: number;
  resumedFromStep?: number;
  pid?: number;
}
