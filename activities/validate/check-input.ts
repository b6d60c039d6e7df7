import ms, { type StringValue } from 'ms';
import { allowedLocation, NotFoundError, openObject, openStore, parseObjectUri } from '../../store';
import type { ResolvedInput } from '../../common/settings/schema';
import { badSetting, InvalidDataError, WorkerMisconfiguredError } from '../../common/failures';
import { llmEndpoint, probeEndpoint } from '../llm/llm-client';
import { allowedModel, checkLocalModelDir, checkStoredModel, parseModelRef } from '../python/model-ref';
import { isHubDataset, parseHubDataset } from './hub-dataset';
import { preflightProbeKey } from '../artifacts/run-keys';
import { heldoutOf, heldoutSplit, servesModels } from '../../common/settings/derive';
import { benchmarkPrompts, type BenchmarkPrompt } from '../datasets/benchmark-prompts';
import type { DatasetRow } from '../datasets/rows';
import { DatasetRows } from '../datasets/read-dataset';
import type { ActivityDeps } from '../deps';
import { fileScorer } from '../datasets/file-scores';

export interface PreflightCheck {
  field: string;
  checked: string;
}

/** What a check has read so far: a step's heartbeat details, the command line's progress line. */
export interface CheckProgress {
  file?: string;
  rows: number;
}

export interface InputCheckOptions {
  /**
   * Check local model directories here. Only where the model is loaded: a CPU worker may run on another machine than
   * the GPU worker, whose own model check covers its directories.
   */
  localModelDirs: boolean;
  /** Write and delete a probe object in the store (off where this process may not see the workers' store). */
  probeStore?: boolean;
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
 * passes exactly the inputs a run would not refuse: every location (checkLocations), every row of the dataset and of
 * each benchmark, the score files against the rows, and stage sizes the rows can fill. It reads but never pays: nothing
 * here asks an LLM. Failures are InvalidDataError naming the file, line and field (WorkerMisconfigured for a worker
 * setting).
 */
export async function checkInput(
  deps: Pick<ActivityDeps, 'env' | 'fileRoots' | 'workDir'>,
  cfg: ResolvedInput,
  opts: InputCheckOptions,
): Promise<{ checks: PreflightCheck[]; gpuCheckWait: string }> {
  const progress = opts.progress ?? { rows: 0 };
  // How long the run waits for a GPU worker to take the model check before it fails (worker setting).
  const gpuCheckWait = gpuCheckWaitFromEnv(deps.env);
  const checks = [...(await checkLocations(deps, cfg, opts)), capabilities(cfg, deps.env)];
  if (isHubDataset(cfg.dataset)) {
    checks.push({
      field: 'input.dataset',
      checked: 'a hub dataset: a CPU worker reads it (HF_HUB_OFFLINE, HF_TOKEN) and checks its rows as the run starts',
    });
  } else {
    const dataset = new DatasetRows(deps, cfg.dataset, {
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
  return { checks, gpuCheckWait };
}

/**
 * Every location of the input, before the first paid request: every URI parses, the store takes a write, the dataset
 * and benchmark objects exist, the base model is one the trainer can find, the LLM endpoint answers where the run will
 * call it. Input mistakes fail as BadInput naming the field; a worker setting that is wrong fails as
 * WorkerMisconfigured naming the variable.
 */
async function checkLocations(
  { env, fileRoots }: Pick<ActivityDeps, 'env' | 'fileRoots'>,
  cfg: ResolvedInput,
  opts: InputCheckOptions,
): Promise<PreflightCheck[]> {
  const where = parseInputLocations(cfg, env, fileRoots);
  const checks: PreflightCheck[] = [];

  if (opts.probeStore !== false) {
    const store = openStore(cfg.store, env, { probe: 'fail-fast', setting: where.storeField });
    await naming(where.storeField, cfg.store, async () => {
      await store.put(preflightProbeKey(cfg.runId), 'preflight');
      await store.delete(preflightProbeKey(cfg.runId));
    });
    checks.push({ field: where.storeField, checked: `${cfg.store} takes writes under ${cfg.runId}/` });
  }

  for (const { field, uri } of where.objects) {
    const head = await naming(field, uri, async () => {
      const { store: holder, key } = openObject(uri, env, { probe: 'fail-fast', setting: field });
      return holder.head(key);
    });
    if (!head) {
      throw badSetting(field, `no file at ${uri} (a folder is not a file: name one .jsonl or .json)`);
    }
    checks.push({ field, checked: `${uri} exists (${head.size} bytes)` });
  }

  for (const { field, ref, value } of where.models) {
    if (ref.kind === 'builtin') {
      checks.push({ field, checked: `${value} is a builtin model` });
    } else if (ref.kind === 'hub') {
      // Fetched (and its revision resolved) by the GPU worker's model check, into that worker's model cache.
      checks.push({ field, checked: `${ref.repoId}@${ref.revision} is a Hugging Face hub model` });
    } else if (ref.kind === 'store') {
      const n = await naming(field, ref.uri, () => checkStoredModel(ref.uri, field, env));
      checks.push({ field, checked: `${ref.uri} holds a model config (${n} objects)` });
    } else if (opts.localModelDirs) {
      allowedModel(ref, fileRoots, field);
      const dir = checkLocalModelDir(ref.path, field);
      checks.push({ field, checked: `${dir} is a model directory on this machine` });
    }
  }

  // Only where the run will call it: an endpoint that never answers is a setting to fix before anything is paid for.
  const llm =
    !['offline', 'file', 'ifd'].includes(cfg.scorer.kind) || cfg.evaluation.judge !== 'offline'
      ? llmEndpoint(env, { maxRetries: 0, timeoutSeconds: 5 })
      : undefined;
  if (llm) {
    await probeEndpoint(llm);
    checks.push({ field: llm.urlSetting, checked: `${llm.baseURL} answers` });
  }
  return checks;
}

/**
 * Parses every URI of the input, so a typo fails in milliseconds and names its field, and refuses a local location
 * outside `fileRoots` (this process's allowed folders) before anything reads it. No I/O beyond following the links on
 * a local path's way.
 */
export function parseInputLocations(cfg: ResolvedInput, env: NodeJS.ProcessEnv, fileRoots: readonly string[]) {
  // The setting that chose the store: the worker's PIFT_STORE when the input named none. A wrong store there is the
  // operator's to fix, not the user's.
  const storeField = env.PIFT_STORE !== undefined && env.PIFT_STORE === cfg.store ? 'PIFT_STORE' : 'input.store';
  // The store names the setting in its own errors, a worker's misconfiguration for PIFT_STORE (settingError).
  openStore(allowedLocation(cfg.store, fileRoots, storeField), env, { setting: storeField });
  // A hub dataset is read by a worker (fetchHubDataset) into the run's store; only its form is checked here.
  if (isHubDataset(cfg.dataset)) parseHubDataset(cfg.dataset, 'input.dataset');
  const objects = inputObjects(cfg);
  for (const { field, uri } of objects) {
    parseObjectUri(uri, { setting: field });
    allowedLocation(uri, fileRoots, field);
  }
  const trains = cfg.training.mode !== 'export-only';
  const ifd = cfg.scorer.kind === 'ifd' || cfg.scorer.compareWith?.kind === 'ifd';
  const models = [
    // An export-only run trains nothing, so it names no model to check, unless IFD scores rows with the base model.
    { field: 'input.training.baseModel', value: trains || ifd ? cfg.training.baseModel : undefined },
    {
      field: 'input.baseline.checkpoint',
      value: trains && cfg.baseline.mode === 'existing' && cfg.baseline.checkpoint,
    },
  ].flatMap(({ field, value }) => {
    if (!value) return [];
    const ref = parseModelRef(value, field);
    // A store folder is listed by this process (preflight). A plain directory is only looked at where the model
    // loads, by that machine's own folders (allowedModel in preflight with localModelDirs, and checkModel).
    if (ref.kind === 'store') allowedLocation(ref.uri, fileRoots, field);
    return [{ field, value, ref }];
  });
  return { storeField, objects, models };
}

/**
 * The objects the run reads by URI (dataset, benchmarks, scorer files), each with its field. A hub dataset is read by a
 * worker into the run's store, so it is none of them.
 */
export function inputObjects(cfg: ResolvedInput): { field: string; uri: string }[] {
  return [
    ...(isHubDataset(cfg.dataset) ? [] : [{ field: 'input.dataset', uri: cfg.dataset }]),
    ...cfg.evaluation.benchmarks.map((b, i) => ({ field: `input.evaluation.benchmarks[${i}].uri`, uri: b.uri })),
    ...(['scorer', 'scorer.compareWith'] as const).flatMap((setting) => {
      const scorer = setting === 'scorer' ? cfg.scorer : cfg.scorer.compareWith;
      const files = scorer?.kind === 'file' ? (scorer.files ?? []) : [];
      return files.map((uri, i) => ({ field: `input.${setting}.files[${i}]`, uri }));
    }),
  ];
}

function gpuCheckWaitFromEnv(env: NodeJS.ProcessEnv): string {
  const wait = env.PIFT_GPU_CHECK_WAIT ?? '2 minutes';
  try {
    if (ms(wait as StringValue) > 0) return wait;
  } catch {
    /* reported below */
  }
  throw new WorkerMisconfiguredError(
    `PIFT_GPU_CHECK_WAIT must be a positive duration such as "2 minutes", got ${JSON.stringify(wait)}`,
    'PIFT_GPU_CHECK_WAIT',
  );
}

/** Local file-system refusals: the store or object is there but cannot be used as given. */
const FS_REFUSALS = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST', 'EISDIR']);

/**
 * Runs one check: an absent object is the user's mistake, a local location the worker may not use is named with its
 * setting. The store names the setting in what it classifies itself; anything else (a bug) propagates unchanged.
 */
async function naming<T>(field: string, uri: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const fromEnv = !field.startsWith('input.');
    if (err instanceof NotFoundError) {
      throw badSetting(field, `${uri} does not exist`);
    }
    const code = (err as { code?: string }).code;
    if (code && FS_REFUSALS.has(code)) {
      const message = `${field}: ${uri} cannot be used from this worker (${code})`;
      throw fromEnv ? new WorkerMisconfiguredError(message, field, uri) : new InvalidDataError(message, { field });
    }
    throw err;
  }
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
  const serve = env.PIFT_SERVE_COMMAND ? 'set here' : 'not set here';
  return {
    field: 'workers',
    checked:
      `a CPU worker, and a GPU worker polling ${cfg.gpuTaskQueue} (the run fails when none takes its model check ` +
      `within PIFT_GPU_CHECK_WAIT)` +
      (servesModels(cfg) ? `; evaluation.serving needs PIFT_SERVE_COMMAND on that GPU worker (${serve})` : ''),
  };
}
