import type { ResolvedInput } from '../../common/input';
import { heldoutOf, heldoutSplit } from '../../common/settings/derive';
import { InvalidDataError } from '../../common/failures';
import type { BenchmarkPrompt } from '../datasets/parse';
import { benchmarkPrompts } from '../datasets/benchmark-prompts';
import type { DatasetRow } from '../datasets/rows';
import { readDatasetRows, type DatasetRows } from '../datasets/read-dataset';
import type { ActivityDeps } from '../deps';
import { fileScorer } from '../datasets/file-scores';
import { isHubDataset } from './hub-dataset';
import { preflight, type PreflightCheck, type PreflightOptions, type PreflightReport } from './preflight';

/** What a check has read so far: a step's heartbeat details, the command line's progress line. */
export interface CheckProgress {
  file?: string;
  rows: number;
}

export interface InputCheckOptions extends PreflightOptions {
  /** Updated as rows are read; whoever passes it reports it (heartbeats, a progress line). */
  progress?: CheckProgress;
  /** Each dataset row and benchmark prompt as it passes its check (`pift validate` estimates costs from them). */
  onRow?: (row: DatasetRow) => void;
  onPrompt?: (prompt: BenchmarkPrompt) => void;
}

/** Rows held out of training for evaluation, by the rule segmentation applies. */
export const heldoutRows = (cfg: ResolvedInput, rows: number): number => heldoutOf(rows, heldoutSplit(cfg));

/**
 * The one check of a run's input, made by `pift validate` and by the run's preflight step alike, so that `validate`
 * passes exactly the inputs a run would not refuse: every location (preflight), every row of the dataset and of each
 * benchmark, the score files against the rows, and stage sizes the rows can fill. It reads but never pays: nothing here
 * asks an LLM. Failures are InvalidDataError naming the file, line and field (WorkerMisconfigured for a worker
 * setting).
 */
export async function checkInput(
  deps: Pick<ActivityDeps, 'env' | 'fileRoots' | 'workDir'>,
  cfg: ResolvedInput,
  opts: InputCheckOptions,
): Promise<PreflightReport> {
  const progress = opts.progress ?? { rows: 0 };
  const report = await preflight(deps.env, cfg, opts);
  const checks = [...report.checks, capabilities(cfg, deps.env)];
  if (isHubDataset(cfg.dataset)) {
    checks.push({
      field: 'input.dataset',
      checked: 'a hub dataset: a CPU worker reads it (HF_HUB_OFFLINE, HF_TOKEN) and checks its rows as the run starts',
    });
  } else {
    const dataset = readDatasetRows(deps, cfg.dataset, {
      format: cfg.datasetFormat,
      columns: cfg.datasetColumns,
      maxRowBytes: cfg.maxRowBytes,
    });
    Object.assign(progress, { file: 'input.dataset', rows: 0 });
    for await (const row of dataset) {
      opts.onRow?.(row);
      progress.rows += 1;
    }
    const rows = progress.rows;
    checks.push({ field: 'input.dataset', checked: `${rows} rows read, each one valid (${dataset.layout} layout)` });
    if (cfg.scorer.kind === 'file') checks.push(await checkScoreFiles(deps, cfg, dataset, rows));
    checks.push(checkStageSizes(cfg, rows));
  }
  for (const bench of cfg.evaluation.benchmarks.entries()) {
    const field = `input.evaluation.benchmarks[${bench[0]}].uri`;
    Object.assign(progress, { file: field, rows: 0 });
    for await (const prompt of benchmarkPrompts(deps, bench, cfg.maxRowBytes)) {
      opts.onPrompt?.(prompt);
      progress.rows += 1;
    }
    checks.push({ field, checked: `${progress.rows} prompts read, each one valid` });
  }
  return { ...report, checks };
}

/** Score files are read whole and matched to every row, as the score step would; too many rows unscored fail here. */
async function checkScoreFiles(
  deps: Pick<ActivityDeps, 'env' | 'fileRoots' | 'workDir'>,
  cfg: ResolvedInput,
  dataset: DatasetRows,
  rows: number,
): Promise<PreflightCheck> {
  const field = cfg.scorer.files?.length ? 'input.scorer.files' : 'input.dataset';
  const scorer = await fileScorer({ ...deps, python: '' }, cfg, { sha256: dataset.sha256!, source: dataset.source });
  let missing = 0;
  let first: string | undefined;
  for await (const row of dataset.reread()) {
    if ((await scorer.score(row)).score !== null) continue;
    missing += 1;
    first ??= row.id;
  }
  const limit = cfg.scorer.maxFailedFraction;
  if (missing > limit * rows) {
    throw new InvalidDataError(
      `${field}: ${missing} of ${rows} rows have no score (${field === 'input.dataset' ? 'no "score" field' : 'not in the score files'}; ` +
        `limit ${limit * 100}%, input.scorer.maxFailedFraction), e.g. row ${JSON.stringify(first)}`,
      { field },
    );
  }
  return { field, checked: `${rows - missing} of ${rows} rows have a score` };
}

/** Every stage needs a row: fewer training rows than stages fail segmentation after scoring was paid. */
function checkStageSizes(cfg: ResolvedInput, rows: number): PreflightCheck {
  const { count, allowEmpty } = cfg.stages;
  const heldout = heldoutRows(cfg, rows);
  const training = rows - heldout;
  if (training < count && !allowEmpty) {
    throw new InvalidDataError(
      `input.stages.count: ${count} stages need at least ${count} training rows; the dataset has ${rows}` +
        `${heldout ? ` (${heldout} of them held out for evaluation)` : ''}. Use fewer stages or more rows`,
      { field: 'input.stages.count' },
    );
  }
  return { field: 'input.stages', checked: `${training} training rows for ${count} stages` };
}

/** What the workers must offer this input; reported here, checked by the workers (the GPU worker's model check). */
function capabilities(cfg: ResolvedInput, env: NodeJS.ProcessEnv): PreflightCheck {
  if (cfg.training.mode === 'export-only') return { field: 'workers', checked: 'a CPU worker (no GPU worker)' };
  const serving = cfg.evaluation.serving !== undefined && cfg.baseline.mode !== 'skip';
  const serve = env.PIFT_SERVE_COMMAND ? 'set here' : 'not set here';
  return {
    field: 'workers',
    checked:
      `a CPU worker, and a GPU worker polling ${cfg.gpuTaskQueue} (the run fails when none takes its model check ` +
      `within PIFT_GPU_CHECK_WAIT)` +
      (serving ? `; evaluation.serving needs PIFT_SERVE_COMMAND on that GPU worker (${serve})` : ''),
  };
}
