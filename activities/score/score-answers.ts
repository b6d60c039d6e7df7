import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { sha256 } from '../artifacts/hashing';
import { DatasetRows } from '../datasets/read-dataset';
import type { DatasetRow } from '../datasets/rows';
import type { ActivityDeps } from '../deps';
import { SCORE_MAX, SCORE_MIN } from '../../common/constants';
import { SCORE_DECODING, scoreMessagesFor } from './score-prompt';
import type { ObjectStore } from '../../store';
import type { ScoreInput, ScoreResult, ScoreRow } from '../types';

/**
 * What a scoring request is, what the answer cache keys it by, and how its answers become a score row: one definition
 * for the online pool and the Batch API, so that a score bought either way is the same bytes under the same key.
 */

const { model: _default, ...DECODING } = SCORE_DECODING;

/** One ask of one row's difficulty (`messages`: the row's, when the caller has built them already). */
export const scoreRequest = (
  model: string,
  row: DatasetRow,
  messages = scoreMessagesFor(row),
): ChatCompletionCreateParamsNonStreaming => ({
  model,
  messages,
  ...DECODING,
});

/** The answer cache's material of a row's score. Its bytes are the cache's keys: never reorder or rename them. */
export const scoreCacheMaterial = (
  model: string,
  promptSha256: string,
  samples: number,
  row: DatasetRow,
  messages = scoreMessagesFor(row),
) => ({
  model,
  prompt: promptSha256,
  decoding: { ...DECODING },
  samples,
  text: sha256(JSON.stringify(messages)),
});

/**
 * Strict parsing of a difficulty score reply: after trimming surrounding whitespace/newlines and one trailing
 * period, the reply must be a plain decimal number between 1 and 5 inclusive, with any number of decimals
 * (`3`, `3.5`, `4.25`, `4.`, `4.125`, `4.166666666666667` are fine; `0.5`, `6`, `5.01`, `Score: 3`, `3/5`, `+3`,
 * `.5`, `1e0` are not). Any number of decimals, because the released scores hold means of several ratings such as
 * 3.5625 and 4.166666666666667.
 */
export type ParsedScore = { ok: true; score: number } | { ok: false; reason: string };

/** Up to 20 decimals: more than a double holds, fewer than a runaway reply. */
const SCORE = /^\d+(?:\.\d{1,20})?$/;

export function parseScore(reply: string): ParsedScore {
  let text = reply.trim();
  if (text.endsWith('.')) text = text.slice(0, -1);
  if (text === '') return { ok: false, reason: 'empty reply' };
  if (!SCORE.test(text)) {
    const shown = reply.length > 60 ? `${reply.slice(0, 60)}...` : reply;
    return { ok: false, reason: `not a bare decimal number: ${JSON.stringify(shown)}` };
  }
  const score = Number(text);
  if (score < SCORE_MIN || score > SCORE_MAX) {
    return { ok: false, reason: `score ${text} is outside ${SCORE_MIN}-${SCORE_MAX}` };
  }
  return { ok: true, score };
}

/** One sample's outcome: a score, or why there is none; `raw` is the last answer seen. */
export type Asked = { score: number; raw: string } | { score: null; raw?: string; error: string };

/**
 * A sample's outcome from the endpoint's reply, online or through the Batch API: a request it rejected (400/422), or
 * the answer as the parser reads it, with a `null` score when it does not parse (the caller may ask again).
 */
export function sampleOf(reply: { content: string } | { rejected: string }): Asked {
  if ('rejected' in reply) return { score: null, error: `request rejected: ${reply.rejected}` };
  const raw = reply.content;
  const parsed = parseScore(raw);
  return parsed.ok ? { score: parsed.score, raw } : { score: null, raw, error: `unparseable answer: ${parsed.reason}` };
}

/**
 * One row's score from its samples' final outcomes. With one sample the row is that sample; with more, the score is
 * the mean of those that parsed (the released scores hold means such as 4.125), every raw answer kept beside it. The
 * row fails when none parsed or the endpoint rejected a request.
 */
export function scoreRowFromSamples(id: string, model: string, promptSha256: string, asked: Asked[]): ScoreRow {
  // Key order is part of the stored bytes: id, score, scorer, promptSha256, then raw / error / samples.
  const scoreRow = (score: number | null, extra: Partial<ScoreRow> = {}): ScoreRow => ({
    id,
    score,
    scorer: model,
    promptSha256,
    ...extra,
  });
  if (asked.length <= 1) {
    const [one] = asked;
    if (one.score !== null) return scoreRow(one.score);
    return scoreRow(null, { ...(one.raw === undefined ? {} : { raw: one.raw }), error: one.error });
  }
  const rejected = asked.find((a): a is Extract<Asked, { score: null }> => a.score === null && a.raw === undefined);
  if (rejected) return scoreRow(null, { error: rejected.error });
  const scores = asked.map((a) => a.score);
  const answers = asked.map((a) => a.raw ?? '');
  const parsed = scores.filter((x): x is number => x !== null);
  if (!parsed.length) {
    const first = asked[0] as Extract<Asked, { score: null }>;
    return scoreRow(null, { raw: answers[0], error: first.error, samples: scores, answers });
  }
  return scoreRow(parsed.reduce((a, b) => a + b, 0) / parsed.length, { samples: scores, answers });
}

/**
 * A line of scores.jsonl as runs write it now: `{"id", "score"}` (with `raw` and `error` when the answer failed).
 * Who scored and with which prompt are the same for every row of a step, so they are said once, in the step's result
 * (`scorer`, `promptSha256` in score/manifest.json), instead of on each of a million rows. Runs of the first version
 * wrote them on every row too; readers take only `id` and `score`, so both formats read alike.
 */
export type StoredScoreRow = Omit<ScoreRow, 'scorer' | 'promptSha256'>;

export const storedScoreRow = ({ scorer: _scorer, promptSha256: _prompt, ...stored }: ScoreRow): StoredScoreRow =>
  stored;

/** What the answer cache keeps of a scored row (only rows that got a score are kept). */
export const cachedScore = ({ id: _id, ...value }: ScoreRow): Omit<ScoreRow, 'id'> => value;

/** The dataset a score step reads, with the format, columns and row size limit its input names. */
export const scoredDataset = (deps: ActivityDeps, input: ScoreInput) =>
  new DatasetRows(deps, input.dataset, {
    format: input.datasetFormat,
    columns: input.datasetColumns,
    maxRowBytes: input.maxRowBytes,
  });

/** The step's result, the same whether it was scored in one activity, in shards or by IFD. */
export const scoreResult = (
  store: ObjectStore,
  keys: { dataset: string; scores: string },
  r: Pick<ScoreResult, 'rows' | 'failed' | 'scorer' | 'offline' | 'promptSha256' | 'histogram' | 'sha256' | 'cost'>,
): ScoreResult => ({
  datasetUri: store.uriFor(keys.dataset),
  scoresUri: store.uriFor(keys.scores),
  rows: r.rows,
  scored: r.rows - r.failed,
  failed: r.failed,
  scorer: r.scorer,
  offline: r.offline,
  promptSha256: r.promptSha256,
  histogram: r.histogram,
  sha256: r.sha256,
  ...(r.cost && { cost: r.cost }),
});
