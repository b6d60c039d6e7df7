import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { delimiter, join } from 'node:path';
import { depsFromEnv } from '../activities/deps';
import { checkModel } from '../activities/python/check-model';
import { CostInputs, costPreview } from './cost-preview';
import {
  checkInput,
  parseInputLocations,
  type CheckProgress,
  type PreflightCheck,
} from '../activities/validate/check-input';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import { InvalidDataError, WorkerMisconfiguredError } from '../common/failures';
import type { PipelineInput } from '../common/settings/schema';
import { FILE_ROOTS_SETTING } from '../store';

export interface Validation {
  checks: PreflightCheck[];
  /** Checks that could not run here, and why; the run's workers make them again. */
  skipped: string[];
}

export interface ValidateOptions {
  env: NodeJS.ProcessEnv;
  /**
   * 'full' (`pift validate`): every check the run makes, the model check included when the trainer's python is here.
   * 'before-start' (`pift run`): schema, run id and URIs; then the store (only when the input names it, since the
   * workers otherwise use their own PIFT_STORE), dataset and benchmarks as far as this machine reaches them.
   */
  mode: 'full' | 'before-start';
  /** With 'before-start': false checks only what needs no I/O (schema, run id, URIs). */
  io?: boolean;
  /** Told every few seconds how far the reading of the rows is. */
  progress?: (p: CheckProgress) => void;
}

/** `run` does not hang on a store this machine cannot reach: the workers check again anyway. */
const BEFORE_START_LIMIT_MS = 20_000;

/** Rejects after `ms`, without keeping the process alive for it. */
const noAnswerWithin = (ms: number) =>
  sleep(ms, undefined, { ref: false }).then(() => Promise.reject(new Error(`no answer within ${ms / 1000} s`)));

/**
 * The check a run makes before its first paid request (checkInput, the run's own preflight), in this process and
 * without starting a workflow; with 'full' also the cost estimate and the model check.
 */
export async function validateInput(input: PipelineInput, runId: string, opts: ValidateOptions): Promise<Validation> {
  const cfg = resolvePipelineInput(input, runId, opts.env);
  // The workers' rule, with this process's environment: PIFT_FILE_ROOTS, else the same default folders.
  const deps = depsFromEnv(opts.env);
  const { fileRoots } = deps;
  parseInputLocations(cfg, opts.env, fileRoots);
  const checks: PreflightCheck[] = [
    { field: 'input', checked: 'matches the schema; defaults filled; no key-shaped value' },
    { field: 'input.runId', checked: cfg.runId },
    { field: 'URIs', checked: 'every URI parses and uses a supported scheme' },
    {
      field: FILE_ROOTS_SETTING,
      checked:
        `local locations are under ${fileRoots.length ? fileRoots.join(delimiter) : 'none'} ` +
        `(${opts.env[FILE_ROOTS_SETTING] === undefined ? 'the default folders' : 'as set'} here; each worker applies its own)`,
    },
  ];
  const skipped: string[] = [];
  const full = opts.mode === 'full';
  if (!full && opts.io === false) return { checks, skipped: ['store and data checks (--no-check)'] };
  const progress: CheckProgress = { rows: 0 };
  const read = full ? new CostInputs(cfg, opts.env) : undefined;
  const check = checkInput(deps, cfg, {
    localModelDirs: full,
    probeStore: full || input.store !== undefined,
    progress,
    ...(read && { onRow: read.row, onPrompt: read.prompt }),
  });
  // Every 2 s, how far the reading of the rows is: a large dataset takes minutes.
  const ticker = opts.progress && setInterval(() => opts.progress!(progress), 2_000);
  try {
    checks.push(...(await Promise.race([check, ...(full ? [] : [noAnswerWithin(BEFORE_START_LIMIT_MS)])])).checks);
  } catch (err) {
    if (full || err instanceof InvalidDataError) throw err;
    skipped.push(`store and data checks (the run's preflight step makes them): ${(err as Error).message}`);
  } finally {
    clearInterval(ticker);
  }
  if (!read) return { checks, skipped };
  // What scoring and judging will cost, from the rows just checked; an estimate above a limit fails here.
  checks.push(...costPreview(opts.env, cfg, read));
  const workDir = await mkdtemp(join(tmpdir(), 'pift-validate-'));
  try {
    const model = await checkModel(
      { ...deps, workDir },
      {
        runId: cfg.runId,
        model: cfg.training.baseModel,
        maxLength: cfg.training.maxLength,
        field: 'input.training.baseModel',
      },
    );
    checks.push({
      field: 'input.training.baseModel',
      checked: `the trainer loads its config and tokenizer (${model.modelType ?? 'model'}, ${model.tokenizerSize} tokens)`,
    });
  } catch (err) {
    // Only a trainer this machine lacks is the GPU worker's to check; a hub model it cannot get fails here too.
    if (!(err instanceof WorkerMisconfiguredError) || err.setting !== 'PIFT_PYTHON') throw err;
    skipped.push(`model check (the GPU worker makes it when the run starts): ${err.message}`);
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  return { checks, skipped };
}
