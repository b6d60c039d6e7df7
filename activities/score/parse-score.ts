/**
 * Strict parsing of a difficulty score reply: after trimming surrounding whitespace/newlines and one trailing
 * period, the reply must be a plain decimal number with at most 2 decimals, between 1 and 5 inclusive
 * (`3`, `3.5`, `4.25`, `4.` are fine; `3.125`, `0.5`, `6`, `Score: 3`, `3/5`, `+3`, `.5` are not).
 * Two decimals, not one, because the released scores include values such as 4.25.
 */
export type ParsedScore = { ok: true; score: number } | { ok: false; reason: string };

export const SCORE_MIN = 1;
export const SCORE_MAX = 5;

const SCORE = /^\d+(?:\.\d{1,2})?$/;

export function parseScore(reply: string): ParsedScore {
  let text = reply.trim();
  if (text.endsWith('.')) text = text.slice(0, -1);
  if (text === '') return { ok: false, reason: 'empty reply' };
  if (!SCORE.test(text)) {
    const shown = reply.length > 60 ? `${reply.slice(0, 60)}...` : reply;
    return { ok: false, reason: `not a bare number with at most 2 decimals: ${JSON.stringify(shown)}` };
  }
  const score = Number(text);
  if (score < SCORE_MIN || score > SCORE_MAX) {
    return { ok: false, reason: `score ${text} is outside ${SCORE_MIN}-${SCORE_MAX}` };
  }
  return { ok: true, score };
}
