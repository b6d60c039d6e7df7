import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runModule } from '../python/trainer-process';
import type { ActivityDeps } from '../deps';
import { allowedLocation, openStore } from '../../store';
import { badSetting } from '../../common/failures';
import { hashInputs } from '../artifacts/hashing';
import { inScratch } from '../artifacts/scratch';
import { runStep } from '../artifacts/step';
import { hubEnv } from '../python/check-model';
import { HUB_DATASET_PREFIX } from '../../common/constants';

/** `hf://datasets/org/name[/config[/split]][@revision]`; the split defaults to train, the revision to main. */
const HUB_DATASET_URI =
  /^hf:\/\/datasets\/[A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*(?:\/[A-Za-z0-9][A-Za-z0-9_.-]*){0,2}(?:@[^@\s/]+)?$/;

export const isHubDataset = (uri: string): boolean => uri.startsWith(HUB_DATASET_PREFIX);

/** Checks the form of a hub dataset URI without any I/O, so a typo fails before the run starts. */
export function parseHubDataset(uri: string, field: string): string {
  if (!HUB_DATASET_URI.test(uri)) {
    throw badSetting(
      field,
      `${JSON.stringify(uri)} is not a hub dataset; expected hf://datasets/org/name[/config[/split]][@revision]`,
    );
  }
  return uri;
}

export interface FetchHubDatasetInput {
  runId: string;
  store: string;
  /** `hf://datasets/…` as the user gave it. */
  uri: string;
}

export interface FetchHubDatasetResult {
  /** The rows as one JSONL object in the run's store: what the rest of the run reads instead of `source`. */
  uri: string;
  source: string;
  /** The commit the rows were read at: the same URI with `@<revision>` gives the same rows again. */
  revision: string;
  rows: number;
  reused?: boolean;
}

/** Where a hub dataset's rows are kept in a run's store. */
export const hubDatasetKeys = (runId: string) => ({
  manifest: `${runId}/dataset/manifest.json`,
  rows: `${runId}/dataset/rows.jsonl`,
});

const DEFAULT_TIMEOUT_MS = 2 * 60 * 60_000;

/**
 * Reads a hub dataset with the `datasets` library on this worker (`python -m pift.fetch_dataset`: cached in the
 * worker's model cache, offline under HF_HUB_OFFLINE=1) and stores its rows as JSONL under the run, with the commit
 * they came from in the step's manifest. Idempotent: a run that already holds them returns at once.
 */
export async function fetchHubDataset(
  deps: Pick<ActivityDeps, 'env' | 'fileRoots' | 'python' | 'workDir'>,
  input: FetchHubDatasetInput,
): Promise<FetchHubDatasetResult> {
  const field = 'input.dataset';
  parseHubDataset(input.uri, field);
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const keys = hubDatasetKeys(input.runId);
  const spec = {
    runId: input.runId,
    step: 'dataset',
    key: keys.manifest,
    inputsHash: hashInputs({ source: input.uri }),
  };
  return runStep(store, spec, (out) =>
    inScratch(join(deps.workDir, input.runId), 'hub-dataset-', async (work) => {
      const outputFile = join(work, 'rows.jsonl');
      const configPath = join(work, 'fetch-dataset.json');
      await writeFile(configPath, JSON.stringify({ uri: input.uri, output_file: outputFile, parent_pid: process.pid }));
      const ready = await runModule(deps, 'pift.fetch_dataset', configPath, {
        env: hubEnv(deps.env),
        timeoutMs: Number(deps.env.PIFT_DATASET_DOWNLOAD_TIMEOUT_MS ?? DEFAULT_TIMEOUT_MS),
        what: 'dataset fetch',
        field,
        ready: 'dataset_ready',
      });
      await out.putFile(keys.rows, outputFile);
      return {
        uri: store.uriFor(keys.rows),
        source: input.uri,
        revision: ready.revision,
        rows: ready.rows,
        reused: false,
      };
    }),
  );
}
