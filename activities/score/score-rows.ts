import type { ScoreRow } from '../types';

/**
 * A line of scores.jsonl as runs write it now: `{"id", "score"}` (with `raw` and `error` when the answer failed).
 * Who scored and with which prompt are the same for every row of a step, so they are said once, in the step's result
 * (`scorer`, `promptSha256` in score/manifest.json), instead of on each of a million rows. Runs of the first version
 * wrote them on every row too; readers take only `id` and `score`, so both formats read alike.
 */
export type StoredScoreRow = Omit<ScoreRow, 'scorer' | 'promptSha256'>;

export const storedScoreRow = ({ scorer: _scorer, promptSha256: _prompt, ...stored }: ScoreRow): StoredScoreRow =>
  stored;
