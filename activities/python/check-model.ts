import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ActivityDeps } from '../deps';
import { downloadPrefix } from '../artifacts/transfer';
import { activityContext } from '../../store/outage';
import { badSetting, WorkerMisconfiguredError } from '../../common/failures';
import { TINY_MODEL } from '../../common/settings/constants';
import { inScratch } from '../artifacts/scratch';
import { allowedModel, checkLocalModelDir, parseModelRef, type ModelRef } from './model-ref';
import { openObject } from '../../store';
import { runModule, trainerEnv } from './trainer-process';

export interface CheckModelInput {
  runId: string;
  /** 'builtin:…', a local directory of this worker, a store folder URI, or hf://org/name[@revision]. */
  model: string;
  maxLength: number;
  /** The input setting the model came from, for messages. */
  field: string;
  /** The run generates through a server (`evaluation.serving`): this worker must have a command to start one. */
  serving?: boolean;
}

export interface CheckModelResult {
  model: string;
  modelType: string | null;
  vocabSize: number | null;
  tokenizerSize: number;
  /** The hub commit, or the package of a converted builtin, the model resolved to; absent for other models. */
  revision?: string;
}

const DEFAULT_TIMEOUT_MS = 5 * 60_000;
const DEFAULT_DOWNLOAD_TIMEOUT_MS = 2 * 60 * 60_000;

/** The weight files transformers loads (safetensors or PyTorch, single or sharded with an index). */
const MODEL_WEIGHTS = /^(model\.safetensors|pytorch_model\.bin)(\.index\.json)?$/;

/** Weights are not needed to check a model: its config and tokenizer files are. */
const WEIGHTS = /\.(safetensors|bin|pt|pth|ckpt|gguf|h5|msgpack)$|\/(optimizer|scheduler|rng_state)[^/]*$/;

/**
 * Loads the model's config and tokenizer with the trainer's own code and checks (`python -m pift.check_model`), in
 * seconds and without weights, so a model the trainer would refuse fails the run before anything is scored.
 */
export async function checkModel(deps: ActivityDeps, input: CheckModelInput): Promise<CheckModelResult> {
  const ref = parseModelRef(input.model, input.field);
  // The same folders the trainer's own load allows (localModel), checked before anything here reads the location.
  allowedModel(ref, deps.fileRoots, input.field);
  return inScratch(join(deps.workDir, input.runId), 'check-model-', (work) => check(deps, input, ref, work));
}

/** The check itself, in a scratch folder of its own (`work`). */
async function check(deps: ActivityDeps, input: CheckModelInput, ref: ModelRef, work: string) {
  let modelPath: string;
  // The trainer converts or downloads these once into this worker's model cache; training finds them there.
  if (ref.kind === 'builtin' || ref.kind === 'hub') modelPath = input.model;
  // Absolute: the check runs in the scratch folder, the path was given relative to this worker's own.
  else if (ref.kind === 'local') modelPath = checkLocalModelDir(ref.path, input.field);
  else {
    const { store, key } = openObject(ref.uri, deps.env, { setting: input.field });
    modelPath = join(work, 'model');
    if ((await downloadPrefix(store, key, modelPath, (k) => WEIGHTS.test(k))) === 0) {
      throw badSetting(input.field, `no model config or tokenizer files under ${ref.uri}`);
    }
    // The weights stay in the store: the trainer finds them by these names, so their presence is checked here.
    const keys = await store.list(`${key}/`);
    if (!keys.some((k) => MODEL_WEIGHTS.test(k.slice(key.length + 1)))) {
      throw badSetting(input.field, `no model weights under ${ref.uri} (expected model.safetensors)`);
    }
  }
  const configPath = join(work, 'check-model.json');
  const config = { model_name_or_path: modelPath, max_length: input.maxLength, weights_listed: ref.kind === 'store' };
  await writeFile(configPath, JSON.stringify(config));
  // A builtin other than the tiny model is converted from its package's file once, into the model cache: minutes the
  // first time, so it runs under the download's time limit, with one line saying so (and no progress bars).
  const converts = ref.kind === 'builtin' && input.model !== TINY_MODEL;
  // One line about slow work, in the worker's log (or on the command line's console).
  const note = `${input.model}: converting it into this worker's model cache (PIFT_MODEL_CACHE), once`;
  if (converts) (activityContext()?.log ?? console).info(note);
  const env = { ...(ref.kind === 'hub' ? hubEnv(deps.env) : trainerEnv(deps.env)), TQDM_DISABLE: '1' };
  // Not for a hub model this worker may not download: it is in the cache, or the check fails at once.
  const fetches = converts || (ref.kind === 'hub' && deps.env.HF_HUB_OFFLINE !== '1');
  // A hub model is downloaded, a builtin converted, during its check: far longer than a check, the first time.
  const timeoutMs = Number(
    fetches
      ? (deps.env.PIFT_MODEL_DOWNLOAD_TIMEOUT_MS ?? DEFAULT_DOWNLOAD_TIMEOUT_MS)
      : (deps.env.PIFT_CHECK_MODEL_TIMEOUT_MS ?? DEFAULT_TIMEOUT_MS),
  );
  const ok = await runModule(deps, 'pift.check_model', configPath, {
    env,
    timeoutMs,
    what: 'model check',
    field: input.field,
    ready: 'model_ok',
    explain: (said) => hubFailure(input, said),
  });
  return {
    model: input.model,
    modelType: ok.model_type ?? null,
    vocabSize: ok.vocab_size ?? null,
    tokenizerSize: ok.tokenizer_size,
    ...(typeof ok.revision === 'string' ? { revision: ok.revision } : {}),
  };
}

/**
 * The one trainer process that may reach the hub: it downloads a hub model into the cache (unless the worker's own
 * HF_HUB_OFFLINE says not to) with the worker's HF_TOKEN for gated models; every later process reads the cache offline.
 */
export function hubEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...trainerEnv(env),
    HF_HUB_OFFLINE: env.HF_HUB_OFFLINE ?? '0',
    ...(env.HF_TOKEN === undefined ? {} : { HF_TOKEN: env.HF_TOKEN }),
  };
}

/**
 * A hub model the worker cannot get, named by what to fix: a gated repository (HF_TOKEN), a hub this worker cannot
 * reach with the model not in its cache (PIFT_MODEL_CACHE, HF_HUB_OFFLINE), a repository the hub does not have. (With
 * HF_HUB_OFFLINE=1 the trainer itself names the cache.)
 */
export function hubFailure(input: Pick<CheckModelInput, 'model' | 'field'>, said: string): Error | undefined {
  if (!input.model.startsWith('hf://')) return undefined;
  if (/GatedRepoError|\b401\b|\b403\b|gated|restricted/i.test(said)) {
    return new WorkerMisconfiguredError(
      `${input.field}: ${input.model} is gated: the GPU worker needs HF_TOKEN of an account that accepted its terms`,
      'HF_TOKEN',
    );
  }
  if (/RepositoryNotFoundError|RevisionNotFoundError/.test(said)) {
    return badSetting(
      input.field,
      `${input.model} is not on the hub (or is private: the GPU worker's HF_TOKEN must have access)`,
    );
  }
  if (
    /LocalEntryNotFoundError|ConnectionError|NameResolution|Max retries exceeded|timed out|OfflineModeIsEnabled/.test(
      said,
    )
  ) {
    return new WorkerMisconfiguredError(
      `${input.field}: ${input.model} is not in the GPU worker's model cache (PIFT_MODEL_CACHE) and the hub cannot be ` +
        'reached from it: give it network access, or fill PIFT_MODEL_CACHE on a machine with access and set ' +
        'HF_HUB_OFFLINE=1',
      'PIFT_MODEL_CACHE',
    );
  }
  return undefined;
}
