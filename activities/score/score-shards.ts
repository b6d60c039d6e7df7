/**
 * Scoring in shards (`scorer.shardRows`): a dataset above the shard size is scored by one activity per shard, each on
 * whichever CPU worker takes it, so scoring scales out with the workers. Three steps, each idempotent with its own
 * manifest:
 *
 * - planScoreShards reads the dataset once (every row checked before any request, the cost estimate checked against
 *   the limits), uploads the run's dataset.jsonl and prompt.txt as the one-activity step does, and each shard's rows;
 * - scoreShard scores one shard's rows through the same pool, into the same parts as the one-activity step (shards
 *   are whole parts, numbered over the whole dataset), and uploads its score lines;
 * - mergeScoreShards joins the shards' score lines into scores.jsonl and commits the score step's manifest, with the
 *   same outputs and result as the one-activity step: a run may switch between the two and keep what was scored. Then
 *   it deletes the shards' files, which nothing reads once the score step is committed.
 */
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { allowedLocation, openStore } from '../../store';
import { streamJsonl } from '../artifacts/jsonl';
import { finishedStep, readManifest } from '../artifacts/manifest';
import { rowsPerPart } from '../artifacts/parts';
import { scoreKeys, scoreShardKeys } from '../artifacts/run-keys';
import { inScratch } from '../artifacts/scratch';
import { runStep, StepOutputs } from '../artifacts/step';
import type { DatasetRow } from '../datasets/rows';
import type { ActivityDeps } from '../deps';
import { costOf, sumSpent, type CostEstimate, type Spent } from '../llm/cost-estimate';
import { whileHeartbeating } from '../heartbeat';
import { LineWriter } from '../rows/row-file';
import type { ScoreInput, ScoreResult } from '../types';
import { SHARDABLE_SCORERS } from '../../common/constants';
import { makeScorer, prepareScoring, refuseTooManyFailures, scoreIntoFile, type ScoreTally } from './score-difficulty';
import { scoreResult } from './score-answers';
import { scoreMessagesFor, scoringEstimateFor } from './score-prompt';

/** What the plan decided; small, as it passes through workflow history. */
export type ScorePlan =
  | { sharded: false; rows: number }
  | {
      sharded: true;
      rows: number;
      shards: number;
      /** Rows per shard: `shardRows` rounded up to whole parts. */
      shardRows: number;
      partRows: number;
      inputsHash: string;
      scorer: string;
      offline: boolean;
      promptSha256: string;
      estimate?: CostEstimate;
      /**
       * With an estimate: each shard's estimated prompt tokens (its answer tokens are its rows' share, every row having
       * the same cap), so each shard gets the share of the limits its rows will cost. Plans recorded before this
       * share the limits by rows.
       */
      shardPromptTokens?: number[];
    };

export type ShardedPlan = Extract<ScorePlan, { sharded: true }>;

/** One shard's committed outcome (its manifest's result). */
type ShardResult = ScoreTally & { spent?: Spent };

/** The store, the score step's keys and the shards' keys of a planned run. */
const shardsOf = (deps: ActivityDeps, input: ScoreInput & { plan: ShardedPlan }) => ({
  store: openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env),
  keys: scoreKeys(input.runId),
  shardKeys: scoreShardKeys(input.runId, input.plan.inputsHash),
});

export async function planScoreShards(
  deps: ActivityDeps,
  input: ScoreInput & { shardRows: number },
): Promise<ScorePlan> {
  if (!SHARDABLE_SCORERS.includes(input.scorer.kind))
    throw new Error(`scorer.kind ${input.scorer.kind} is not scored in shards`);
  return inScratch(deps.workDir, 'score-shards-', async (work) => {
    const p = await prepareScoring(deps, input, work);
    const { store, keys, read, inputsHash } = p;
    const shardKeys = scoreShardKeys(input.runId, inputsHash);
    const partRows = await rowsPerPart(new StepOutputs(store), keys.part(inputsHash, 0), read.rows);
    const shardRows = Math.ceil(input.shardRows / partRows) * partRows;
    const shards = Math.ceil(read.rows / shardRows);
    // Not above the shard size: the one-activity step scores it (and reads it again; a plan costs one read).
    if (shards <= 1) return { sharded: false, rows: read.rows };
    // A score step committed from other inputs is refused before anything of it is overwritten; one committed from
    // these inputs is the one activity's to return.
    if ((await finishedStep(store, keys.manifest, inputsHash)) !== undefined)
      return { sharded: false, rows: read.rows };
    // Uploading a large dataset and its shards can outlast the heartbeat timeout.
    let shardsWritten = 0;
    return runStep<ShardedPlan>(
      store,
      { runId: input.runId, step: 'score/shards/plan', key: shardKeys.plan, inputsHash },
      async (out) => {
        const estimate = p.checkedEstimate();
        // The one-activity step's first two outputs, recorded again by the merge.
        await out.putFile(keys.dataset, p.datasetPath);
        await out.put(keys.prompt, p.prompt.template);
        // Each shard's rows as dataset.jsonl stores them: what the scorers read of a row (never its other fields).
        const rows = createInterface({ input: createReadStream(p.datasetPath) })[Symbol.asyncIterator]();
        const shardPromptTokens: number[] = [];
        for (let shard = 0; shard < shards; shard++) {
          const path = join(work, `rows-${shard}.jsonl`);
          const writer = await LineWriter.create(path);
          // Counted as the step's estimate counts them, so the shards' estimates add up to it.
          const shardEstimate = estimate && scoringEstimateFor(input);
          try {
            for (let n = 0; n < shardRows; n++) {
              const line = await rows.next();
              if (line.done) break;
              await writer.text(line.value);
              shardEstimate?.add(scoreMessagesFor(JSON.parse(line.value) as DatasetRow));
            }
          } finally {
            await writer.close();
          }
          if (shardEstimate) shardPromptTokens.push(shardEstimate.result().promptTokens);
          await out.putFile(shardKeys.rows(shard), path);
          await rm(path);
          shardsWritten += 1;
        }
        return {
          sharded: true,
          rows: read.rows,
          shards,
          shardRows,
          partRows,
          inputsHash,
          ...p.scoredBy,
          ...(estimate && { estimate, shardPromptTokens }),
        };
      },
      { heartbeat: () => ({ shardsWritten, shards }) },
    );
  });
}

const shardSize = (plan: ShardedPlan, shard: number) => Math.min(plan.shardRows, plan.rows - shard * plan.shardRows);

/**
 * A shard's share of the step's spending limits: in proportion to its estimate where the plan recorded one (a shard of
 * long rows needs more than its rows' share, and one of short rows less), else to its rows.
 */
export function shardLimits(
  scorer: ScoreInput['scorer'],
  plan: ShardedPlan,
  shard: number,
  promptTokens: number | undefined,
): ScoreInput['scorer'] {
  const rowShare = shardSize(plan, shard) / plan.rows;
  const e = plan.estimate;
  let tokenShare = rowShare;
  let costShare = rowShare;
  if (e && promptTokens !== undefined) {
    const mine = { prompt: promptTokens, output: e.outputTokens * rowShare };
    tokenShare = (mine.prompt + mine.output) / e.totalTokens;
    const price = scorer.pricePerMillionTokens;
    const total = costOf({ prompt: e.promptTokens, output: e.outputTokens }, price);
    costShare = total ? costOf(mine, price)! / total : tokenShare;
  }
  return {
    ...scorer,
    ...(scorer.maxTokens !== undefined && { maxTokens: scorer.maxTokens * tokenShare }),
    ...(scorer.maxCostUsd !== undefined && { maxCostUsd: scorer.maxCostUsd * costShare }),
  };
}

/** Scores one shard; returns its counts only (the merge reads the rest from the shard's manifest). */
export async function scoreShard(
  deps: ActivityDeps,
  /** `promptTokens`: the shard's prompt tokens from the plan (`shardPromptTokens`), handed to this shard alone. */
  input: ScoreInput & { plan: ShardedPlan; shard: number; promptTokens?: number },
) {
  const { plan, shard } = input;
  const { store, keys, shardKeys } = shardsOf(deps, input);
  const rows = shardSize(plan, shard);
  const limits = shardLimits(input.scorer, plan, shard, input.promptTokens ?? plan.shardPromptTokens?.[shard]);
  const scorer = makeScorer({ ...input, scorer: limits }, deps, store, plan.promptSha256);
  if (scorer.label !== plan.scorer) {
    // `auto` on a worker without an endpoint, or another default model: its scores are not the plan's.
    throw new Error(
      `this worker scores with ${scorer.label}, the run's plan with ${plan.scorer}: give every CPU worker the same ` +
        'PIFT_OPENAI_BASE_URL and PIFT_SCORER_MODEL',
    );
  }
  const progress = { scored: 0, answered: 0, total: rows, shard: shard + 1, shards: plan.shards };
  const done = await runStep<ShardResult>(
    store,
    {
      runId: input.runId,
      step: `score/shards/${shard + 1}`,
      key: shardKeys.manifest(shard),
      inputsHash: plan.inputsHash,
    },
    (out) =>
      inScratch(deps.workDir, 'score-shards-', async (work) => {
        const scoresPath = join(work, 'scores.jsonl');
        const tally = await scoreIntoFile({
          rows: streamJsonl<DatasetRow>(store, shardKeys.rows(shard)),
          rowCount: rows,
          partRows: plan.partRows,
          firstPart: (shard * plan.shardRows) / plan.partRows,
          partKey: (i) => keys.part(plan.inputsHash, i),
          store,
          scorer,
          concurrency: input.scorer.concurrency,
          scoresPath,
          progress,
        });
        await scorer.flush?.();
        if (tally.rows !== rows) throw new Error(`${shardKeys.rows(shard)} holds ${tally.rows} rows, not ${rows}`);
        await out.putFile(shardKeys.scores(shard), scoresPath);
        return { ...tally, ...(scorer.meter && { spent: scorer.meter.total() }) };
      }),
    { heartbeat: () => progress },
  );
  return { shard: shard + 1, rows: done.rows, failed: done.failed };
}

export async function mergeScoreShards(
  deps: ActivityDeps,
  input: ScoreInput & { plan: ShardedPlan },
): Promise<ScoreResult> {
  const { plan } = input;
  const { store, keys, shardKeys } = shardsOf(deps, input);
  const progress = { merged: 0, shards: plan.shards };
  const result = await runStep(
    store,
    { runId: input.runId, step: 'score', key: keys.manifest, inputsHash: plan.inputsHash },
    (out) =>
      inScratch(deps.workDir, 'score-shards-', async (work) => {
        const planned = await readManifest<ShardedPlan>(store, shardKeys.plan);
        if (!planned || planned.inputsHash !== plan.inputsHash) throw new Error(`${shardKeys.plan} is missing`);
        for (const key of [keys.dataset, keys.prompt]) out.record(planned.outputs.find((o) => o.key === key)!);

        const tallies: ShardResult[] = [];
        const histogram: Record<string, number> = {};
        for (let shard = 0; shard < plan.shards; shard++) {
          // With its score lines intact: damaged ones would be joined into scores.jsonl.
          const done = await finishedStep<ShardResult>(store, shardKeys.manifest(shard), plan.inputsHash);
          if (!done) throw new Error(`shard ${shard + 1} is not committed (or its score lines were damaged)`);
          tallies.push(done);
          for (const [bucket, n] of Object.entries(done.histogram)) histogram[bucket] = (histogram[bucket] ?? 0) + n;
        }
        const failed = tallies.reduce((n, t) => n + t.failed, 0);
        const failedParts = tallies.flatMap((t) => t.failedParts);
        // A resumed run scores again just the shards, and in them the parts, that hold failures.
        const shardOf = (part: number) => Math.floor((part * plan.partRows) / plan.shardRows);
        await refuseTooManyFailures(
          { failed, failedParts, firstFailure: tallies.find((t) => t.firstFailure)?.firstFailure },
          plan.rows,
          input.scorer.maxFailedFraction,
          async (i) => {
            await store.delete(shardKeys.manifest(shardOf(i)));
            await store.delete(keys.part(plan.inputsHash, i));
          },
        );

        const scoresPath = join(work, 'scores.jsonl');
        const writer = await LineWriter.create(scoresPath);
        try {
          for (let shard = 0; shard < plan.shards; shard++) {
            for await (const chunk of await store.getStream(shardKeys.scores(shard))) await writer.write(chunk);
            progress.merged += 1;
          }
        } finally {
          await writer.close();
        }
        const { sha256 } = await out.putFile(keys.scores, scoresPath);
        const { estimate } = plan;
        const spent = tallies.map((t) => t.spent!);
        const cost = estimate && { estimate, spent: sumSpent(spent, input.scorer.pricePerMillionTokens) };
        return scoreResult(store, keys, { ...plan, failed, histogram, sha256, cost });
      }),
    { heartbeat: () => progress },
  );
  // Only once the score step is committed: until then a retry needs the shards. A committed step is returned from its
  // own manifest (as here, on a retry after a crash before this line, which then finishes the deletion), and a later
  // plan of the same inputs leaves it to the one activity, so nothing reads the shards again.
  await whileHeartbeating(
    () => ({ ...progress, deleting: shardKeys.dir }),
    () => store.deletePrefix(shardKeys.dir),
  );
  return result;
}
