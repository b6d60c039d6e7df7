import type { DatasetRow } from '../datasets/rows';
import type { ActivityDeps } from '../deps';
import { batchActivities, batchStepBase, type BatchStep } from '../llm/batch-rounds';
import { endpointFor, scorerModel } from '../llm/llm-client';
import type { ScoreInput } from '../types';
import {
  cachedScore,
  parseScore,
  sampleOf,
  scoreCacheMaterial,
  scoreRequest,
  scoreRowFromSamples,
  scoredDataset,
} from './score-answers';
import { SCORE_CORRECTION, scorePromptFor } from './score-prompt';

/**
 * `scorer.mode: "batch"`: the difficulty questions the answer cache lacks are asked through the Batch API, and every
 * row whose samples are all answered goes into the cache under the same key, with the same bytes, as the online pool
 * would have put there. The scoring step that follows takes those rows from the cache and asks online only what the
 * batches left (rows that failed, and rows the rounds ran out on).
 */

export interface ScoreBatchInput extends ScoreInput {
  round: number;
}

/** A row's sample `s` is the request `<row index>.<s>`: short, unique in a batch, the same in every round. */
const customId = (index: number, sample: number) => `${index}.${sample}`;

/** Where request `<row index>.<sample>` comes in the walk: rows in order, each row's samples in order. */
const positionOf = (id: string) => {
  const dot = id.indexOf('.');
  return Number(id.slice(0, dot)) * 65_536 + Number(id.slice(dot + 1));
};

/** The step's rounds, or undefined when this scorer asks no endpoint (offline, file scores). */
function scoring(deps: ActivityDeps, input: ScoreBatchInput): BatchStep<[number, DatasetRow]> | undefined {
  const kind = input.scorer.kind;
  if (kind === 'file' || kind === 'ifd') return undefined;
  const endpoint = endpointFor(kind, 'input.scorer.kind', deps.env, {
    maxRetries: input.scorer.requestRetries,
    timeoutSeconds: input.scorer.timeoutSeconds,
  });
  if (!endpoint) return undefined;
  const base = batchStepBase(deps, input, 'score', endpoint, input.scorer.cache);
  // Read again on each walk: the rows are never all in memory.
  const dataset = scoredDataset(deps, input);
  const model = scorerModel(deps.env, input.scorer.model).model;
  const samples = input.scorer.samples ?? 1;
  const { cache } = base;
  // Known once the walk has read the dataset's first row (it gives the layout).
  const promptSha256 = () => scorePromptFor(dataset.layout).sha256;
  const material = (row: DatasetRow) => scoreCacheMaterial(model, promptSha256(), samples, row);
  return {
    ...base,
    parseRetries: input.scorer.parseRetries,
    parses: (content) => parseScore(content).ok,
    correction: SCORE_CORRECTION,
    position: positionOf,
    async *items() {
      let index = 0;
      for await (const row of dataset) yield [index++, row] as [number, DatasetRow];
    },
    isCached: async ([, row]) => (await cache.get(material(row))) !== undefined,
    requests: ([index, row]) =>
      Array.from({ length: samples }, (_, k) => ({
        customId: customId(index, k),
        request: () => scoreRequest(model, row),
      })),
    keep: ([, row], states) => {
      const asked = states.map(({ outcome }) => sampleOf(outcome));
      const scored = scoreRowFromSamples(row.id, model, promptSha256(), asked);
      // Rows that failed are left out, as the online pool leaves them out: the scoring step asks them again.
      if (scored.score === null) return false;
      cache.put(material(row), cachedScore(scored));
      return true;
    },
    limits: { ...input.scorer, setting: 'input.scorer' },
    name: 'scoring',
    logged: () => ({ rows: dataset.rows }),
  };
}

export const { submit: submitScoreBatch, collect: collectScoreBatch } = batchActivities(
  scoring,
  'a scorer that asks no endpoint',
);
