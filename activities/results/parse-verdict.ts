/**
 * Parsing of the judge's reply: the first line must hold exactly two numbers, the scores of Assistant 1 and
 * Assistant 2, separated by spaces and/or commas.
 *
 * Like the released `parse_score` (PhasedSFT evaluation/eval.py): NFKC-normalise, first line only, commas read as
 * spaces, exactly two numbers. Unlike it: runs of separators count once (the released split(" ") sees "8, 9" as
 * three fields and fails), and the whole reply is trimmed first, so leading blank lines or spaces are tolerated.
 * A score <= 0 is a failure too: the released statistics script drops every pair with a score <= 0 (its parse
 * failure sentinel is -1), so such a pair counts for neither side there either. Scores above 10 are kept, as there.
 */
export type ParsedVerdict = { ok: true; score1: number; score2: number } | { ok: false; reason: string };

const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$/;

function quoted(text: string, max = 80): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}...` : text);
}

export function parseVerdict(reply: string): ParsedVerdict {
  const text = reply.normalize('NFKC').trim();
  if (text === '') return { ok: false, reason: 'empty reply' };
  const firstLine = text.split(/\r?\n/, 1)[0];
  const fields = firstLine.replace(/,/g, ' ').trim().split(/\s+/);
  if (fields.length !== 2) {
    return {
      ok: false,
      reason: `expected two scores on the first line, found ${fields.length} fields: ${quoted(firstLine)}`,
    };
  }
  const bad = fields.find((f) => !NUMBER.test(f));
  if (bad !== undefined) return { ok: false, reason: `not a number: ${quoted(bad)} in ${quoted(firstLine)}` };
  const [score1, score2] = fields.map(Number);
  if (!(score1 > 0 && score2 > 0)) {
    return { ok: false, reason: `scores must be positive, got ${quoted(firstLine)}` };
  }
  return { ok: true, score1, score2 };
}
