/**
 * Every key of a run's artifact tree, in one place. The names are part of the stored format: runs written by an
 * earlier version are resumed from them, so they only ever change together with a migration.
 *
 *   <runId>/
 *     .preflight-probe                                  written and deleted again: proves the store takes writes
 *     owner.json                                        the workflow that claimed the run id, written once, first
 *     score/        manifest.json, dataset.jsonl, scores.jsonl, prompt.txt
 *                   parts/<hash12>-<00000>.jsonl          100 scored rows each, committed one by one
 *                   shards/<hash12>/                      with scorer.shardRows: manifest.json (the plan),
 *                                   rows-<00001>.jsonl, scores-<00001>.jsonl, shard-<00001>/manifest.json
 *     score/compare/ manifest.json, dataset.jsonl, scores.jsonl, …   scorer.compareWith's own step (not segmented)
 *     score/agreement/ manifest.json, agreement.json        the two scorers' rank agreement and histograms
 *     segment/      manifest.json, stage-<k>.jsonl, one-off.jsonl, heldout.jsonl, summary.json
 *     controls/<ordering>/
 *                   manifest.json, stage-<k>.jsonl         the `random` control's stages (evaluation.controls)
 *     benchmarks/   manifest.json, <benchmark>.jsonl
 *     train/<name>/ manifest.json, losses.json, final/…, metrics/<file>.jsonl (what the trainer logged)
 *                   logs/attempt-<n>.log                  the trainer's whole log (stderr) of each attempt
 *                   checkpoints/step-<000000000>/         manifest.json (committed last) and the trainer's files
 *     generate/<name>/
 *                   manifest.json, <benchmark>.jsonl
 *                   <benchmark>.<hash12>.done            the answers' entry, written once they are uploaded
 *     evaluate/     manifest.json, results.json, results.md
 *                   judgments/<candidate>/<benchmark>.<hash12>.jsonl
 *     report/       manifest.json, report.md, report.html
 *     score/batch/, evaluate/batch/                       with `mode: "batch"` (Batch API), per round <nn>:
 *                   round-<nn>/requests.jsonl, upload.json, batch.json, results.jsonl
 *
 * `<hash12>` is the start of the step's inputs hash: a part left by other inputs is never taken for one of ours.
 */

const MANIFEST = 'manifest.json';

/** Part keys carry this much of the inputs hash. */
const partTag = (inputsHash: string) => inputsHash.slice(0, 12);

/** Written and deleted by the checks before scoring: the store takes writes under the run's prefix. */
export const preflightProbeKey = (runId: string) => `${runId}/.preflight-probe`;

/** Written once, by a conditional write, before any step: the one workflow this run id belongs to. */
export const runOwnerKey = (runId: string) => `${runId}/owner.json`;

/** A step's folder: the folder itself, its manifest, and the files `named` there. */
const stepFolder = <T>(dir: string, named: (dir: string) => T) => ({
  dir,
  manifest: `${dir}/${MANIFEST}`,
  ...named(dir),
});

const scoreKeysIn = (dir: string) =>
  stepFolder(dir, () => ({
    dataset: `${dir}/dataset.jsonl`,
    scores: `${dir}/scores.jsonl`,
    prompt: `${dir}/prompt.txt`,
    part: (inputsHash: string, index: number) =>
      `${dir}/parts/${partTag(inputsHash)}-${String(index).padStart(5, '0')}.jsonl`,
  }));

export const scoreKeys = (runId: string) => scoreKeysIn(`${runId}/score`);

/**
 * Scoring in shards (`scorer.shardRows`), under the inputs hash it scores for: the plan's manifest, each shard's rows
 * (as dataset.jsonl stores them), score lines and manifest. The scored parts are the step's own (`scoreKeys().part`).
 */
export const scoreShardKeys = (runId: string, inputsHash: string) => {
  const dir = `${runId}/score/shards/${partTag(inputsHash)}`;
  const shard = (index: number) => String(index + 1).padStart(5, '0');
  return {
    /** Every shard file of one plan: scratch, deleted once the merge has committed the score step. */
    dir,
    plan: `${dir}/${MANIFEST}`,
    rows: (index: number) => `${dir}/rows-${shard(index)}.jsonl`,
    scores: (index: number) => `${dir}/scores-${shard(index)}.jsonl`,
    manifest: (index: number) => `${dir}/shard-${shard(index)}/${MANIFEST}`,
  };
};

/** The second scorer of `scorer.compareWith`: the same files as the score step's, in their own folder. */
export const scoreCompareKeys = (runId: string) => ({
  ...scoreKeysIn(`${runId}/score/compare`),
  agreement: { manifest: `${runId}/score/agreement/${MANIFEST}`, result: `${runId}/score/agreement/agreement.json` },
});

export const segmentKeys = (runId: string) =>
  stepFolder(`${runId}/segment`, (dir) => ({
    stage: (k: number) => `${dir}/stage-${k}.jsonl`,
    oneOff: `${dir}/one-off.jsonl`,
    heldout: `${dir}/heldout.jsonl`,
    summary: `${dir}/summary.json`,
  }));

/** Stage files and dataset descriptions for other trainers (LLaMA-Factory, axolotl), all in one folder. */
export const exportKeys = (runId: string) =>
  stepFolder(`${runId}/export`, (dir) => ({ file: (name: string) => `${dir}/${name}` }));

/** A control ordering's stage files (evaluation.controls). */
export const controlKeys = (runId: string, ordering: string) =>
  stepFolder(`${runId}/controls/${ordering}`, (dir) => ({ stage: (k: number) => `${dir}/stage-${k}.jsonl` }));

export const benchmarkKeys = (runId: string) =>
  stepFolder(`${runId}/benchmarks`, (dir) => ({ prompts: (benchmark: string) => `${dir}/${benchmark}.jsonl` }));

export const trainKeys = (runId: string, name: string) =>
  stepFolder(`${runId}/train/${name}`, (dir) => ({
    /** A folder: the trained model's files. */
    final: `${dir}/final`,
    losses: `${dir}/losses.json`,
    /** A folder: metrics files the trainer wrote (JSONL), uploaded with the final model. */
    metrics: `${dir}/metrics`,
    /** The trainer's log of one attempt, kept whether it succeeded or not. */
    log: (attempt: number) => `${dir}/logs/attempt-${attempt}.log`,
    /** A folder of `step-N` folders. */
    checkpoints: `${dir}/checkpoints`,
    checkpoint: (step: number) => `${dir}/checkpoints/step-${String(step).padStart(9, '0')}`,
  }));

/** The manifest of a checkpoint folder (or of any folder committed as one unit). */
export const manifestIn = (folder: string) => `${folder}/${MANIFEST}`;

/** The `step-N` folder name a key lies in, if any. */
export const checkpointFolderOf = (key: string) => /\/(step-\d+)\//.exec(key)?.[1];

export const generateKeys = (runId: string, name: string) =>
  stepFolder(`${runId}/generate/${name}`, (dir) => ({
    answers: (benchmark: string) => `${dir}/${benchmark}.jsonl`,
    answersDone: (benchmark: string, inputsHash: string) => `${dir}/${benchmark}.${partTag(inputsHash)}.done`,
  }));

export const evaluateKeys = (runId: string) =>
  stepFolder(`${runId}/evaluate`, (dir) => ({
    results: `${dir}/results.json`,
    markdown: `${dir}/results.md`,
    judgments: (candidate: string, benchmark: string, inputsHash: string) =>
      `${dir}/judgments/${candidate}/${benchmark}.${partTag(inputsHash)}.jsonl`,
  }));

export const reportKeys = (runId: string) =>
  stepFolder(`${runId}/report`, (dir) => ({ markdown: `${dir}/report.md`, html: `${dir}/report.html` }));

/**
 * One round of a step's Batch API requests (`scorer.mode` / `evaluation.mode` "batch"): the request file as uploaded,
 * the uploaded file's id (written before the batch is created), the batch's id, and every request's outcome.
 */
export const batchRoundKeys = (runId: string, step: 'score' | 'evaluate', round: number) => {
  const dir = `${runId}/${step}/batch/round-${String(round).padStart(2, '0')}`;
  return {
    requests: `${dir}/requests.jsonl`,
    /** Part k of a round sent as several batches; the first part keeps the name of a round of one batch. */
    uploadOfPart: (k: number) => (k ? `${dir}/upload-${k}.json` : `${dir}/upload.json`),
    batch: `${dir}/batch.json`,
    results: `${dir}/results.jsonl`,
  };
};
