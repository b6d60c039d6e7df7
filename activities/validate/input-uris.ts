import { allowedLocation, openStore, parseObjectUri } from '../../store';
import type { ResolvedInput } from '../../common/input';
import { InvalidDataError, WorkerMisconfiguredError } from '../../common/failures';
import { parseModelRef, type ModelRef } from '../python/model-ref';
import { isHubDataset, parseHubDataset } from './hub-dataset';

/** Every location the run will touch, each under the name of the setting it came from. */
export interface InputLocations {
  store: { field: string; uri: string };
  objects: Array<{ field: string; uri: string }>;
  models: Array<{ field: string; ref: ModelRef; value: string }>;
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
export function parseInputLocations(
  cfg: ResolvedInput,
  env: NodeJS.ProcessEnv,
  fileRoots: readonly string[],
): InputLocations {
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
  const hubDataset = isHubDataset(cfg.dataset);
  if (hubDataset) parseHubDataset(cfg.dataset, 'input.dataset');
  const objects = [
    ...(hubDataset ? [] : [{ field: 'input.dataset', uri: cfg.dataset }]),
    ...cfg.evaluation.benchmarks.map((b, i) => ({ field: `input.evaluation.benchmarks[${i}].uri`, uri: b.uri })),
    ...(cfg.scorer.kind === 'file' ? (cfg.scorer.files ?? []) : []).map((uri, i) => ({
      field: `input.scorer.files[${i}]`,
      uri,
    })),

    ...(cfg.scorer.compareWith?.kind === 'file' ? (cfg.scorer.compareWith.files ?? []) : []).map((uri, i) => ({
      field: `input.scorer.compareWith.files[${i}]`,
      uri,
    })),
  ];
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
