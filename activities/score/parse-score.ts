import { SCORE_MAX, SCORE_MIN } from '../../common/constants';
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
