/**
 * The difficulty-scoring request. The paper did not release its scoring prompt, so this one is OURS
 * (paper.md, "Scoring"): it asks for the difficulty of following the instruction (with its input) well, on the
 * paper's 1-5 scale (higher = harder, one decimal allowed), answered with a bare number; temperature 0, one sample.
 * Every stored score records the model and SCORE_PROMPT_SHA256, so scores from another prompt never mix silently.
 */
import { sha256 } from '../artifacts/hashing';
import { PAPER_JUDGE_MODEL } from '../../common/settings/constants';
import { isConversation, scoredText, type DatasetRow } from '../datasets/rows';
import { ScoringEstimate } from '../llm/cost-estimate';
import type { ScoreInput } from '../types';

/** The 1-5 scale and answer format, the same words for Alpaca rows and conversations. */
const SCORE_SCALE = `Use a scale from 1 to 5, where higher means harder:
1 = trivial: a single obvious step, no knowledge or reasoning needed.
2 = easy: a short, familiar task with one or two steps.
3 = moderate: several steps, some knowledge, or a specific output format.
4 = hard: multi-step reasoning, specialised knowledge or careful, constrained writing.
5 = very hard: long chains of reasoning, expert knowledge or many strict constraints at once.
You may use one decimal place, for example 2.5.

Answer with the bare number only: no words, no units, no explanation.`;

export const SCORE_PROMPT_TEMPLATE = `Rate how difficult it is for an AI assistant to follow the instruction below well, that is, to give a response that is correct, complete and helpful. When an input follows the instruction on the next lines, the task is to follow the instruction for that input.

${SCORE_SCALE}

[Instruction]
{text}
[End of Instruction]`;

/** sha256 (hex) of SCORE_PROMPT_TEMPLATE (pinned by a test). Activity code only: it needs node:crypto. */
export const SCORE_PROMPT_SHA256 = sha256(SCORE_PROMPT_TEMPLATE);

/**
 * OURS, for conversation rows: the same scale, lines and answer format as SCORE_PROMPT_TEMPLATE; what is rated is the
 * assistant's last reply, so the conversation is shown up to the last user turn (earlier assistant turns are context,
 * and the answer being trained on is not shown, as an Alpaca row's output is not).
 */
export const SCORE_CONVERSATION_PROMPT_TEMPLATE = `Rate how difficult it is for an AI assistant to give the next reply in the conversation below well, that is, a reply to the last user turn that is correct, complete and helpful in the context of the earlier turns. A system turn, when there is one, sets the instructions the assistant must follow.

${SCORE_SCALE}

[Conversation]
{text}
[End of Conversation]`;

export const SCORE_CONVERSATION_PROMPT_SHA256 = sha256(SCORE_CONVERSATION_PROMPT_TEMPLATE);

const SPEAKER = { system: 'System', user: 'User', assistant: 'Assistant' } as const;

/** The conversation as the scoring prompt shows it: each turn up to the last user turn, `User: …` / `Assistant: …`. */
function conversationText(messages: ReadonlyArray<{ role: 'system' | 'user' | 'assistant'; content: string }>): string {
  const lastUser = messages.map((m) => m.role).lastIndexOf('user');
  return messages
    .slice(0, lastUser + 1)
    .map((m) => `${SPEAKER[m.role]}: ${m.content}`)
    .join('\n\n');
}

const ALPACA_PROMPT = { template: SCORE_PROMPT_TEMPLATE, sha256: SCORE_PROMPT_SHA256 };
const CONVERSATION_PROMPT = { template: SCORE_CONVERSATION_PROMPT_TEMPLATE, sha256: SCORE_CONVERSATION_PROMPT_SHA256 };

/** The prompt a dataset's rows are scored with: the paper-scale Alpaca prompt, or its conversation wording. */
export const scorePromptFor = (layout: 'alpaca' | 'sharegpt' | 'messages' | undefined) =>
  layout === 'sharegpt' || layout === 'messages' ? CONVERSATION_PROMPT : ALPACA_PROMPT;

/** A scoring request's messages: a single user message, `template` filled with `text`. */
const userMessage = (template: string, text: string): Array<{ role: 'user'; content: string }> =>
  // split/join, not replace: a `$&` inside the row must stay literal.
  [{ role: 'user', content: template.split('{text}').join(text) }];

/** The scoring request's messages for any dataset row: Alpaca rows exactly as buildScoreMessages builds them. */
export const scoreMessagesFor = (row: DatasetRow) =>
  isConversation(row)
    ? userMessage(SCORE_CONVERSATION_PROMPT_TEMPLATE, conversationText(row.messages))
    : buildScoreMessages(row.instruction, row.input);

/**
 * [ours] The follow-up turn of a re-ask, after the model's unparseable reply: at temperature 0 the same request would
 * get the same reply again.
 */
export const SCORE_CORRECTION =
  'Your reply has no score I can read. Answer again with the difficulty score alone: one number from 1 to 5 ' +
  '(one decimal allowed), nothing else.';

/** [ours] temperature 0, one sample; a bare number needs only a few tokens. */
export const SCORE_DECODING = {
  model: PAPER_JUDGE_MODEL,
  temperature: 0,
  n: 1,
  max_tokens: 8,
} as const;

/** The chat messages of one scoring request of an Alpaca row. */
export const buildScoreMessages = (instruction: string, input = '') =>
  userMessage(SCORE_PROMPT_TEMPLATE, scoredText({ instruction, input }));

/** An empty count of the scoring step's cost, for rows to be added to (by the step, and by the client's preview). */
export const scoringEstimateFor = ({
  scorer,
}: {
  scorer: Pick<ScoreInput['scorer'], 'samples' | 'pricePerMillionTokens' | 'parseRetries'>;
}) =>
  new ScoringEstimate({
    samples: scorer.samples ?? 1,
    price: scorer.pricePerMillionTokens,
    parseRetries: scorer.parseRetries,
    maxTokens: SCORE_DECODING.max_tokens,
  });
