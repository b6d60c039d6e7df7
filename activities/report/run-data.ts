/**
 * Everything a run's report shows, read from the run's artifacts in the store (nothing from workflow history), so a
 * report can be written for any finished run, also one finished before the report step existed.
 */
import { convergenceFlags, unreliableModels, type ConvergenceFlag } from '../../common/convergence';
import { InvalidDataError } from '../../common/failures';
import type { ObjectStore } from '../../store';
import type { BenchmarkPrompt } from '../datasets/benchmark-prompts';
import { readJsonl, streamJsonl } from '../artifacts/jsonl';
import { readJson, readManifest } from '../artifacts/manifest';
import { lossRecord, trainingCurves, type TrainingCurve } from '../artifacts/training-curves';
import {
  benchmarkKeys,
  evaluateKeys,
  exportKeys,
  generateKeys,
  scoreCompareKeys,
  scoreKeys,
  segmentKeys,
} from '../artifacts/run-keys';
import { winRateStatistics, type StoredVerdict, type WinRateStatistics } from '../results/statistics';
import type { WinRateReport } from '../results/report';
import type { Outcome } from '../results/verdict';
import type { GenerateResult, ScoreAgreement, ScoreResult } from '../types';
import { binIndex, isOpenScale, roundBinWidth } from '../results/histogram';

export interface ScoreBin {
  /** `low <= score < high` (the last bin also holds its upper edge). */
  low: number;
  high: number;
  rows: number;
  /** Rows per stage (index 0 = stage 1); one entry, all rows, where stages are not score ranges. */
  byStage: number[];
}

export interface SampleAnswer {
  benchmark: string;
  id: string;
  instruction: string;
  input: string;
  reference?: string;
  /** Answer per model, baseline included, in report order. */
  answers: Array<{ model: string; answer: string; outcome?: Outcome }>;
}

export interface RunReportData {
  runId: string;
  results: WinRateReport & { offline?: boolean; statistics?: WinRateStatistics };
  statistics: WinRateStatistics;
  /** Stage rule, cut points and sizes (segment/summary.json). */
  segment?: {
    rule: string;
    thresholds: number[];
    stages: Array<{ stage: number; rows: number; minScore: number | null; maxScore: number | null }>;
    oneOff: number;
    heldout: number;
    unscored: number;
  };
  /** Scored rows per score bin, split by the stage each row went to; rows whose score failed. */
  scores?: { scorer: string; histogram: ScoreBin[]; failed: number };
  /** With `scorer.compareWith`: the second scorer's histogram and the two scorers' rank agreement. */
  agreement?: ScoreAgreement;
  training: TrainingCurve[];
  /** Trainings that did not converge, and the compared models whose win rate is unreliable because of them. */
  convergence: { flags: ConvergenceFlag[]; unreliable: Set<string> };
  samples: SampleAnswer[];
  /** What generated each model's answers, where its generate step recorded it (`pift.generate`, or a server). */
  generation: Array<{ model: string; generatedBy: string; server?: string }>;
}

export const REPORT_SAMPLES = 6;

type JudgedPrompt = StoredVerdict & { id: string };

/**
 * Whole-number scores get a bin each; finer ones (the released data has 4.25) bins a quarter wide; scores on an open
 * scale (IFD) at most about a dozen bins of a round width.
 */
async function scoreHistogram(store: ObjectStore, runId: string, seg: RunReportData['segment']) {
  const key = scoreKeys(runId).scores;
  if (!(await store.exists(key))) return undefined;
  const rows: number[] = [];
  let failed = 0;
  // Runs write the scorer once, in the step's result; the first version wrote it on every row.
  let scorer = (await readManifest<ScoreResult>(store, scoreKeys(runId).manifest))?.result.scorer ?? '';
  for await (const row of streamJsonl<{ score: number | null; scorer?: string }>(store, key)) {
    scorer ||= row.scorer ?? '';
    if (row.score === null || !Number.isFinite(row.score)) failed++;
    else rows.push(row.score);
  }
  if (rows.length === 0) return { scorer, histogram: [], failed };
  // No spreading over rows: a million arguments overflow the stack.
  const low = rows.reduce((a, b) => Math.min(a, b));
  const high = rows.reduce((a, b) => Math.max(a, b));
  const width = isOpenScale(scorer) ? roundBinWidth(low, high) : rows.every(Number.isInteger) ? 1 : 0.25;
  const first = binIndex(low, width);
  const lowest = first * width;
  const count = binIndex(high, width) - first + 1;
  const stages = seg && seg.rule !== 'random' ? seg.stages.length : 1;
  // Edges without float noise (0.1 * 3 is 0.30000000000000004).
  const at = (i: number) => Number((lowest + i * width).toPrecision(12));
  const histogram: ScoreBin[] = Array.from({ length: count }, (_, i) => ({
    low: at(i),
    high: at(i + 1),
    rows: 0,
    byStage: new Array<number>(stages).fill(0),
  }));
  for (const score of rows) {
    const bin = histogram[Math.min(count - 1, binIndex(score, width) - first)];
    // Where stages are not score ranges (`random`), every row counts for the one column.
    const stage = seg && seg.rule !== 'random' ? 1 + seg.thresholds.filter((t) => score >= t).length : 1;
    bin.rows++;
    bin.byStage[Math.min(stages, stage) - 1]++;
  }
  return { scorer, histogram, failed };
}

/** Judgment files of the evaluate step, per (candidate, benchmark), as its manifest lists them. */
async function storedVerdicts(store: ObjectStore, runId: string, results: WinRateReport) {
  const manifest = await readManifest<unknown>(store, evaluateKeys(runId).manifest);
  const byModel = new Map<string, Map<string, JudgedPrompt[]>>();
  for (const { key } of manifest?.outputs ?? []) {
    const m = /\/evaluate\/judgments\/([^/]+)\/(.+)\.[0-9a-f]{12}\.jsonl$/.exec(key);
    if (!m || !results.benchmarks.includes(m[2])) continue;
    if (!byModel.has(m[1])) byModel.set(m[1], new Map());
    byModel.get(m[1])!.set(m[2], await readJsonl<JudgedPrompt>(store, key));
  }
  return byModel;
}

/** A handful of prompts spread over the benchmarks (round robin, evenly spaced within each), deterministic. */
function pickSamples(prompts: Map<string, BenchmarkPrompt[]>, count: number) {
  const names = [...prompts.keys()].filter((n) => prompts.get(n)!.length > 0);
  return names.flatMap((name, i) => {
    const rows = prompts.get(name)!;
    const take = Math.min(Math.floor(count / names.length) + (i < count % names.length ? 1 : 0), rows.length);
    return Array.from({ length: take }, (_, j) => [name, rows[Math.floor((j * rows.length) / take)]] as const);
  });
}

export async function loadRunReportData(store: ObjectStore, runId: string): Promise<RunReportData> {
  const evalKeys = evaluateKeys(runId);
  const results = await readJson<RunReportData['results']>(store, evalKeys.results);
  if (!results) {
    // An export-only run trains and evaluates nothing: what it made is the export, not a report.
    const exported = await store.exists(exportKeys(runId).manifest);
    throw new InvalidDataError(
      exported
        ? `run ${runId} has no evaluation to report: it exported its stages (training.mode "export-only") to ` +
            `${store.uriFor(exportKeys(runId).dir)}/ (see the README.md there)`
        : `${store.uriFor(evalKeys.results)} does not exist: run ${runId} has not finished its evaluation in this store`,
      { field: 'runId' },
    );
  }
  const verdicts = await storedVerdicts(store, runId, results);
  // Runs evaluated before the statistics existed get them from their stored verdicts now.
  const statistics =
    results.statistics ??
    winRateStatistics(
      results.comparisons.map((c) => ({
        model: c.model,
        perBenchmark: c.benchmarks.map((b) => ({
          benchmark: b.benchmark,
          verdicts: verdicts.get(c.model)?.get(b.benchmark) ?? [],
        })),
      })),
    );

  const candidates = results.comparisons.map((c) => c.model);
  const models = [...candidates, results.baseline];
  const prompts = new Map<string, BenchmarkPrompt[]>();
  for (const b of results.benchmarks) {
    const key = benchmarkKeys(runId).prompts(b);
    if (await store.exists(key)) prompts.set(b, await readJsonl<BenchmarkPrompt>(store, key));
  }
  const generation: RunReportData['generation'] = [];
  for (const model of models) {
    const recorded = (await readManifest<GenerateResult>(store, generateKeys(runId, model).manifest))?.result;
    if (!recorded?.generatedBy) continue;
    generation.push({ model, generatedBy: recorded.generatedBy, ...(recorded.server && { server: recorded.server }) });
  }
  const answers = new Map<string, string>();
  for (const model of models) {
    for (const b of results.benchmarks) {
      const key = generateKeys(runId, model).answers(b);
      if (!(await store.exists(key))) continue;
      for (const a of await readJsonl<{ id: string; answer: string }>(store, key))
        answers.set(`${model}\n${b}\n${a.id}`, a.answer);
    }
  }
  const samples = pickSamples(prompts, REPORT_SAMPLES).map(([benchmark, p]): SampleAnswer => ({
    benchmark,
    id: p.id,
    instruction: p.instruction,
    input: p.input,
    answers: models.map((model) => {
      const judged = verdicts.get(model)?.get(benchmark);
      const outcome = judged?.find((v) => v.id === p.id)?.outcome;
      return { model, answer: answers.get(`${model}\n${benchmark}\n${p.id}`) ?? '', ...(outcome ? { outcome } : {}) };
    }),
    ...(p.reference !== undefined && { reference: p.reference }),
  }));

  const training = await trainingCurves(store, runId);
  const flags = convergenceFlags(training.map(lossRecord));
  const segment = await readJson<RunReportData['segment']>(store, segmentKeys(runId).summary);
  const agreement = await readJson<ScoreAgreement>(store, scoreCompareKeys(runId).agreement.result);
  return {
    runId,
    results,
    statistics,
    segment,
    scores: await scoreHistogram(store, runId, segment),
    ...(agreement ? { agreement } : {}),
    training,
    convergence: { flags, unreliable: unreliableModels(flags, results.baseline, candidates) },
    samples,
    generation,
  };
}

/** One line on how the answers were generated, or undefined where no generate step recorded it. */
export function generationSummary(data: Pick<RunReportData, 'generation'>): string | undefined {
  const how = (g: RunReportData['generation'][number]) =>
    g.generatedBy === 'served'
      ? `through a serving endpoint (${g.server ?? 'server unrecorded'})`
      : `by ${g.generatedBy}`;
  if (data.generation.length === 0) return undefined;
  const ways = new Set(data.generation.map(how));
  if (ways.size === 1) return `Answers generated ${[...ways][0]}.`;
  return `Answers generated: ${data.generation.map((g) => `${g.model} ${how(g)}`).join('; ')}.`;
}
