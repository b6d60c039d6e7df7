import ms, { type StringValue } from 'ms';
import { allowedLocation, NotFoundError, openObject, openStore, parseObjectUri } from '../../store';
import type { ResolvedInput } from '../../common/input';
import { badSetting, InvalidDataError, WorkerMisconfiguredError } from '../../common/failures';
import { llmEndpoint, probeEndpoint } from '../llm/llm-client';
import { allowedModel, checkLocalModelDir, checkStoredModel, parseModelRef } from '../python/model-ref';
import { isHubDataset, parseHubDataset } from './hub-dataset';
import { preflightProbeKey } from '../artifacts/run-keys';

export interface PreflightCheck {
  field: string;
  checked: string;
}

export interface PreflightReport {
  checks: PreflightCheck[];
  /** How long the run waits for a GPU worker to take the model check before it fails (worker setting). */
  gpuCheckWait: string;
}

export interface PreflightOptions {
  /**
   * Check local model directories here. Only where the model is loaded: a CPU worker may run on another machine than
   * the GPU worker, whose own model check covers its directories.
   */
  localModelDirs: boolean;
  /**
   * Real paths of this process's allowed local folders (ActivityDeps.fileRoots): a local location outside them is
   * refused before it is read or listed here.
   */
  fileRoots: readonly string[];
  /** Write and delete a probe object in the store (off where this process may not see the workers' store). */
  probeStore?: boolean;
}

export const DEFAULT_GPU_CHECK_WAIT = '2 minutes';

/**
 * Everything that can be checked before the first paid request: every URI parses, the store takes a write, the
 * dataset and benchmark objects exist, the base model is one the trainer can find. Input mistakes fail as BadInput
 * naming the field; a worker setting that is wrong fails as WorkerMisconfigured naming the variable.
 */
export async function preflight(
  env: NodeJS.ProcessEnv,
  cfg: ResolvedInput,
  opts: PreflightOptions,
): Promise<PreflightReport> {
  const gpuCheckWait = gpuCheckWaitFromEnv(env);
  const where = parseInputLocations(cfg, env, opts.fileRoots);
  const checks: PreflightCheck[] = [];

  if (opts.probeStore !== false) {
    const store = openStore(cfg.store, env, { probe: 'fail-fast', setting: where.store.field });
    await naming(where.store.field, cfg.store, async () => {
      await store.put(preflightProbeKey(cfg.runId), 'preflight');
      await store.delete(preflightProbeKey(cfg.runId));
    });
    checks.push({ field: where.store.field, checked: `${cfg.store} takes writes under ${cfg.runId}/` });
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
      allowedModel(ref, opts.fileRoots, field);
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
  return { checks, gpuCheckWait };
}

/**
 * The setting that chose the store: the worker's PIFT_STORE when the input named none. A wrong store there is the
 * operator's to fix, not the user's.
 */
export const storeSetting = (cfg: Pick<ResolvedInput, 'store'>, env: NodeJS.ProcessEnv): string =>
  env.PIFT_STORE !== undefined && env.PIFT_STORE === cfg.store ? 'PIFT_STORE' : 'input.store';

/**
 * Parses every URI of the input, so a typo fails in milliseconds and names its field, and refuses a local location
 * outside `fileRoots` (this process's allowed folders) before anything reads it. No I/O beyond following the links on
 * a local path's way.
 */
export function parseInputLocations(cfg: ResolvedInput, env: NodeJS.ProcessEnv, fileRoots: readonly string[]) {
  const store = { field: storeSetting(cfg, env), uri: cfg.store };
  try {
    allowedLocation(cfg.store, fileRoots, store.field);
    // The store names the setting in its own messages.
    openStore(cfg.store, env, { setting: store.field });
  } catch (err) {
    if (store.field === 'PIFT_STORE' && err instanceof InvalidDataError)
      throw new WorkerMisconfiguredError(err.message, 'PIFT_STORE', cfg.store);
    throw err;
  }
  // A hub dataset is read by a worker (fetchHubDataset) into the run's store; only its form is checked here.
  if (isHubDataset(cfg.dataset)) parseHubDataset(cfg.dataset, 'input.dataset');
  const objects = inputObjects(cfg);
  for (const { field, uri } of objects) {
    parseObjectUri(uri, { setting: field });
    allowedLocation(uri, fileRoots, field);
  }
  // An export-only run trains nothing, so it names no model to check, unless IFD scores rows with the base model.
  const ifd = cfg.scorer.kind === 'ifd' || cfg.scorer.compareWith?.kind === 'ifd';
  const models =
    cfg.training.mode === 'export-only' && !ifd
      ? []
      : [{ field: 'input.training.baseModel', value: cfg.training.baseModel }];
  if (cfg.training.mode !== 'export-only' && cfg.baseline.mode === 'existing' && cfg.baseline.checkpoint) {
    models.push({ field: 'input.baseline.checkpoint', value: cfg.baseline.checkpoint });
  }
  return {
    store,
    objects,
    models: models.map((m) => {
      const ref = parseModelRef(m.value, m.field);
      // A store folder is listed by this process (preflight). A plain directory is only looked at where the model
      // loads, by that machine's own folders (allowedModel in preflight with localModelDirs, and checkModel).
      if (ref.kind === 'store') allowedLocation(ref.uri, fileRoots, m.field);
      return { ...m, ref };
    }),
  };
}

/**
 * The objects the run reads by URI (dataset, benchmarks, scorer files), each with its field. A hub dataset is read by a
 * worker into the run's store, so it is none of them.
 */
export function inputObjects(cfg: ResolvedInput): { field: string; uri: string }[] {
  return [
    ...(isHubDataset(cfg.dataset) ? [] : [{ field: 'input.dataset', uri: cfg.dataset }]),
    ...cfg.evaluation.benchmarks.map((b, i) => ({ field: `input.evaluation.benchmarks[${i}].uri`, uri: b.uri })),
    ...scoreFiles(cfg.scorer, 'input.scorer.files'),
    ...scoreFiles(cfg.scorer.compareWith, 'input.scorer.compareWith.files'),
  ];
}

/** The score files a scorer of kind `file` reads, each with its field. */
const scoreFiles = (scorer: { kind: string; files?: string[] } | undefined, field: string) =>
  (scorer?.kind === 'file' ? (scorer.files ?? []) : []).map((uri, i) => ({ field: `${field}[${i}]`, uri }));

function gpuCheckWaitFromEnv(env: NodeJS.ProcessEnv): string {
  const wait = env.PIFT_GPU_CHECK_WAIT ?? DEFAULT_GPU_CHECK_WAIT;
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
