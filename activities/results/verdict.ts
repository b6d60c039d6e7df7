/**
 * Per-prompt outcome of a pairwise comparison judged in both orders, from the CANDIDATE's side
 * (the phased / stage model; the baseline is the One-off model).
 *
 * The two orders, as the released scripts run them (PhasedSFT evaluation/run_gpt4_scoring.sh and
 * win_tie_loss_stat.py):
 * - order 1 shows the BASELINE first: Assistant 1 = baseline, Assistant 2 = candidate.
 *   The candidate is better iff score2 > score1, worse iff score2 < score1, tied iff equal.
 * - order 2 shows the CANDIDATE first: Assistant 1 = candidate, Assistant 2 = baseline.
 *   The candidate is better iff score1 > score2, worse iff score1 < score2, tied iff equal.
 * (win_tie_loss_stat.py counts a baseline win when order1[0] > order1[1] and order2[1] > order2[0]: the same
 * mapping seen from the other side.) Scores are compared exactly, as floats; no margin.
 *
 * The outcome rule (paper.md's table, which is symmetric, so it reads the same from either side):
 *
 * | order 1 \ order 2 | better | tie  | worse |
 * |-------------------|--------|------|-------|
 * | better            | win    | win  | tie   |
 * | tie               | win    | tie  | loss  |
 * | worse             | tie    | loss | loss  |
 *
 * i.e. the sign of (+1 better, 0 tie, -1 worse) summed over the two orders. If either order's reply does not
 * parse, the prompt is 'failed': it counts for neither side but stays in the win rate's N.
 */
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

/** How the candidate fared against the baseline in one order. */
export type Preference = 'better' | 'tie' | 'worse';
export type Outcome = 'win' | 'tie' | 'loss' | 'failed';
export type JudgeOrder = 1 | 2;

/** The candidate's preference in one order from that order's (Assistant 1, Assistant 2) scores. */
export function candidatePreference(order: JudgeOrder, score1: number, score2: number): Preference {
  const candidate = order === 1 ? score2 : score1;
  const baseline = order === 1 ? score1 : score2;
  if (candidate > baseline) return 'better';
  if (candidate < baseline) return 'worse';
  return 'tie';
}

const OUTCOME_TABLE: Readonly<Record<Preference, Readonly<Record<Preference, Exclude<Outcome, 'failed'>>>>> = {
  better: { better: 'win', tie: 'win', worse: 'tie' },
  tie: { better: 'win', tie: 'tie', worse: 'loss' },
  worse: { better: 'tie', tie: 'loss', worse: 'loss' },
};

/** The two-order rule: candidate's preference in order 1 and in order 2 → win / tie / loss. */
export function decideOutcome(order1: Preference, order2: Preference): Exclude<Outcome, 'failed'> {
  return OUTCOME_TABLE[order1][order2];
}

export interface PairVerdict {
  outcome: Outcome;
  /** Candidate's preference per order; absent for an order whose reply did not parse. */
  order1?: Preference;
  order2?: Preference;
  /** Both orders parsed and the candidate's preference differs between them (position bias or noise). */
  positionInconsistent: boolean;
  /** Why the prompt failed, when it did: the parse failure reason(s), prefixed with the order. */
  reason?: string;
}

/** Outcome from the judge's raw reply texts for order 1 (baseline shown first) and order 2 (candidate shown first). */
export function verdictFromReplies(replyOrder1: string, replyOrder2: string): PairVerdict {
  const [order1, order2] = [parseVerdict(replyOrder1), parseVerdict(replyOrder2)];
  if (!order1.ok || !order2.ok) {
    const reason = [order1, order2].flatMap((o, i) => (o.ok ? [] : [`order ${i + 1}: ${o.reason}`])).join('; ');
    return { outcome: 'failed', positionInconsistent: false, reason };
  }
  const p1 = candidatePreference(1, order1.score1, order1.score2);
  const p2 = candidatePreference(2, order2.score1, order2.score2);
  return { outcome: decideOutcome(p1, p2), order1: p1, order2: p2, positionInconsistent: p1 !== p2 };
}
