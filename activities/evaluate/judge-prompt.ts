/**
 * The pairwise judge request of the paper, reproduced from the released PhasedSFT `evaluation/eval.py`
 * (`gen_prompt` and the OpenAI call): one system message, one user message that shows the question, then
 * Assistant 1's and Assistant 2's answers between markers, then a [System] section asking for one line with
 * two 1-10 scores. The strings below are the protocol; change them only with a new JUDGE_PROMPT_VERSION.
 */
import { sha256 } from '../artifacts/hashing';
import { PAPER_JUDGE_MODEL } from '../../common/settings/constants';

export const JUDGE_SYSTEM_PROMPT = 'You are a helpful and precise assistant for checking the quality of the answer.';

/** The released script's active criteria text (a commented-out variant asked for an explanation; this one does not). */
export const JUDGE_CRITERIA =
  'We would like to request your feedback on the performance of two AI assistants in response to the user question displayed above.\n' +
  'Please rate the helpfulness, relevance, accuracy, level of details of their responses. Each assistant receives an overall score on a scale of 1 to 10, where a higher score indicates better overall performance.\n' +
  'Please only output a single line containing only two values indicating the scores for Assistant 1 and 2, respectively. The two scores are separated by a space. Do not explain for your scores.';

/** The user message with its placeholders; note the blank line before each End marker and the trailing blank line. */
export const JUDGE_USER_TEMPLATE =
  '[Question]\n{question}\n\n' +
  "[The Start of Assistant 1's Answer]\n{answer_1}\n\n[The End of Assistant 1's Answer]\n\n" +
  "[The Start of Assistant 2's Answer]\n{answer_2}\n\n[The End of Assistant 2's Answer]\n\n" +
  '[System]\n{criteria}\n\n';

/** Decoding settings of the released script (temperature 0.0, top_p 1.0, --max_tokens 256). */
export const JUDGE_DECODING = {
  model: PAPER_JUDGE_MODEL,
  temperature: 0,
  top_p: 1,
  max_tokens: 256,
} as const;

/** [ours] The follow-up turn of a re-ask (askAgain), after a reply without two scores on its first line. */
export const JUDGE_CORRECTION =
  'Your reply has no two scores I can read. Answer again with the two scores alone on one line: the score of ' +
  'Assistant 1, a space, the score of Assistant 2.';

/**
 * Changes whenever any protocol string changes: `judge-pairwise-v1+sha256:` and 16 hex digits. Activity code only:
 * it needs node:crypto.
 */
export const JUDGE_PROMPT_VERSION = `judge-pairwise-v1+sha256:${sha256(
  JSON.stringify([JUDGE_SYSTEM_PROMPT, JUDGE_USER_TEMPLATE, JUDGE_CRITERIA]),
).slice(0, 16)}`;

export interface ChatMessage {
  role: 'system' | 'user';
  content: string;
}

/**
 * The question as the judge sees it: the instruction alone, or `{instruction} Input: {input}` when the prompt
 * has a non-empty input (the released script does this for Self-Instruct, Anthropic HH and OASST, whose
 * files carry inputs; the other benchmarks have none).
 */
export function judgeQuestion(instruction: string, input = ''): string {
  return input ? `${instruction} Input: ${input}` : instruction;
}

/** Fills the template with a replacer function, so `$` or braces inside answers are never interpreted. */
export function judgeUserMessage(question: string, answer1: string, answer2: string): string {
  const values: Record<string, string> = { question, answer_1: answer1, answer_2: answer2, criteria: JUDGE_CRITERIA };
  return JUDGE_USER_TEMPLATE.replace(/\{(question|answer_1|answer_2|criteria)\}/g, (_, key: string) => values[key]);
}

export function buildJudgeMessages(question: string, answer1: string, answer2: string): ChatMessage[] {
  return [
    { role: 'system', content: JUDGE_SYSTEM_PROMPT },
    { role: 'user', content: judgeUserMessage(question, answer1, answer2) },
  ];
}

/** The chat-completions request for one order; `answer1` is whoever is shown as Assistant 1 in that order. */
export function buildJudgeRequest(
  question: string,
  answer1: string,
  answer2: string,
  options: { model?: string } = {},
) {
  return {
    ...JUDGE_DECODING,
    model: options.model ?? JUDGE_DECODING.model,
    messages: buildJudgeMessages(question, answer1, answer2),
    promptVersion: JUDGE_PROMPT_VERSION,
  };
}
