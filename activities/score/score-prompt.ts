/**
 * The difficulty-scoring request. The paper did not release its scoring prompt, so this one is OURS
 * (paper.md, "Scoring"): it asks for the difficulty of following the instruction (with its input) well, on the
 * paper's 1-5 scale (higher = harder, one decimal allowed), answered with a bare number; temperature 0, one sample.
 * Every stored score records the model and SCORE_PROMPT_SHA256, so scores from another prompt never mix silently.
 */
import { sha256 } from '../artifacts/hashing';
import { PAPER_JUDGE_MODEL } from '../../common/settings/constants';

export const SCORE_PROMPT_TEMPLATE = `Rate how difficult it is for an AI assistant to follow the instruction below well, that is, to give a response that is correct, complete and helpful. When an input follows the instruction on the next lines, the task is to follow the instruction for that input.

Use a scale from 1 to 5, where higher means harder:
1 = trivial: a single obvious step, no knowledge or reasoning needed.
2 = easy: a short, familiar task with one or two steps.
3 = moderate: several steps, some knowledge, or a specific output format.
4 = hard: multi-step reasoning, specialised knowledge or careful, constrained writing.
5 = very hard: long chains of reasoning, expert knowledge or many strict constraints at once.
You may use one decimal place, for example 2.5.

Answer with the bare number only: no words, no units, no explanation.

[Instruction]
{text}
[End of Instruction]`;

/** sha256 (hex) of SCORE_PROMPT_TEMPLATE (pinned by a test). Activity code only: it needs node:crypto. */
export const SCORE_PROMPT_SHA256 = sha256(SCORE_PROMPT_TEMPLATE);

/** [ours] temperature 0, one sample; a bare number needs only a few tokens. */
export const SCORE_DECODING = {
  model: PAPER_JUDGE_MODEL,
  temperature: 0,
  n: 1,
  max_tokens: 8,
} as const;

export interface ScoreRequest {
  model: string;
  temperature: number;
  n: number;
  max_tokens: number;
  messages: Array<{ role: 'user'; content: string }>;
  promptSha256: string;
}

/** What is scored: the instruction, plus "\n" + input when the row has a non-empty input (as the released data). */
export function scoredText(row: { instruction: string; input?: string }): string {
  return row.input ? `${row.instruction}\n${row.input}` : row.instruction;
}

export function scoreUserMessage(row: { instruction: string; input?: string }): string {
  // split/join, not replace: a `$&` inside the row must stay literal.
  return SCORE_PROMPT_TEMPLATE.split('{text}').join(scoredText(row));
}

/** The chat messages of one scoring request: a single user message. */
export function buildScoreMessages(instruction: string, input = ''): Array<{ role: 'user'; content: string }> {
  return [{ role: 'user', content: scoreUserMessage({ instruction, input }) }];
}

export function buildScoreRequest(
  row: { instruction: string; input?: string },
  options: { model?: string } = {},
): ScoreRequest {
  return {
    ...SCORE_DECODING,
    model: options.model ?? SCORE_DECODING.model,
    messages: buildScoreMessages(row.instruction, row.input),
    promptSha256: SCORE_PROMPT_SHA256,
  };
}
