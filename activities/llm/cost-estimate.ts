/**
 * What a step that asks an LLM endpoint will cost, said before its first request, and the spending limit that stops
 * it: the estimate is checked against `maxCostUsd` / `maxTokens` before anything is sent, and the tokens the endpoint
 * reports (`usage`) are metered while the step runs (SpendMeter), so a step whose real usage outgrows its estimate
 * still stops at the limit.
 *
 * Tokens are counted at 4 characters a token (Math.ceil per request), the rule of thumb OpenAI gives for English
 * text: no tokenizer library is a dependency of the project, and the judge models' own tokenizers are not public for
 * every endpoint anyway. It is an approximation; the metered usage is the endpoint's own count.
 */
import { log } from '@temporalio/activity';
import { InvalidDataError } from '../../common/failures';

/** USD per million tokens, as providers list them. */
export interface Price {
  input: number;
  output: number;
}

/** A step's price and limits, as the settings give them, with the field that names them in messages. */
export interface CostLimits {
  pricePerMillionTokens?: Price;
  maxCostUsd?: number;
  maxTokens?: number;
  /** `input.scorer` or `input.evaluation`. */
  setting: string;
}

export interface TokenCount {
  prompt: number;
  output: number;
}

export interface CostEstimate {
  requests: number;
  promptTokens: number;
  /** Every request's `max_tokens`: answers can be shorter, never longer. */
  outputTokens: number;
  totalTokens: number;
  /** Absent without a price. */
  costUsd?: number;
  tokenCounting: string;
  /** What the estimate leaves out or assumes. */
  assumptions: string[];
}

export const approxTokens = (text: string): number => Math.ceil(text.length / 4);

/** One request's messages, as the step that sends it builds them: only their text is counted. */
export type Messages = ReadonlyArray<{ content?: unknown }>;

/** One request's prompt tokens (the text of its messages) and its answer's cap. */
export function requestTokens(messages: Messages, maxTokens: number | null | undefined): TokenCount {
  let text = '';
  for (const m of messages) if (typeof m.content === 'string') text += m.content;
  return { prompt: approxTokens(text), output: maxTokens ?? 0 };
}

export const costOf = (tokens: TokenCount, price?: Price): number | undefined =>
  price && (tokens.prompt * price.input + tokens.output * price.output) / 1e6;

/** What a step's estimate assumes of re-asks and of the cache: `per` is what one ask is for. */
const asks = (per: string, replies: string, retries: number) =>
  `one ask per ${per}; re-asks of unparseable ${replies} (up to ${retries} each) add to it, ` +
  `${replies} already in the cache take from it`;

/** Requests counted as they are built: each one's messages asked `times` times, each with a `maxTokens` answer. */
export class RequestCount {
  readonly tokens: TokenCount = { prompt: 0, output: 0 };
  requests = 0;

  constructor(
    private readonly times: number,
    private readonly maxTokens: number | null,
  ) {}

  add(messages: Messages, maxTokens = this.maxTokens): void {
    const one = requestTokens(messages, maxTokens);
    this.tokens.prompt += one.prompt * this.times;
    this.tokens.output += one.output * this.times;
    this.requests += this.times;
  }

  /** The estimate of the requests counted so far, with what it leaves out or assumes. */
  result(price: Price | undefined, assumptions: string[]): CostEstimate {
    const { prompt, output } = this.tokens;
    const costUsd = costOf(this.tokens, price);
    return {
      requests: this.requests,
      promptTokens: prompt,
      outputTokens: output,
      totalTokens: prompt + output,
      ...(costUsd === undefined ? {} : { costUsd }),
      tokenCounting: 'approximate: 4 characters a token',
      assumptions,
    };
  }
}

/**
 * Scoring's estimate counted row by row, for a step that reads its rows once, as a stream, instead of holding them:
 * every row's score prompt, `samples` times, each with the scorer's `max_tokens` answer (`maxTokens`).
 */
export class ScoringEstimate extends RequestCount {
  constructor(
    private readonly opts: { samples: number; price?: Price; parseRetries: number; maxTokens: number | null },
  ) {
    super(opts.samples, opts.maxTokens);
  }

  override result(): CostEstimate {
    return super.result(this.opts.price, [asks('row and sample', 'answers', this.opts.parseRetries)]);
  }
}

/**
 * Judging: each prompt's messages asked in both orders (the two requests hold the same text), each with the judge's
 * `max_tokens` (`maxTokens`).
 */
export function estimateJudging(
  prompts: Iterable<Messages>,
  opts: { price?: Price; parseRetries: number; maxTokens: number | null; assumptions?: string[] },
): CostEstimate {
  const counted = new RequestCount(2, opts.maxTokens);
  for (const messages of prompts) counted.add(messages);
  return counted.result(opts.price, [...(opts.assumptions ?? []), asks('order', 'replies', opts.parseRetries)]);
}

/** An answer of `tokens` tokens as the estimate counts them, for answers not generated yet. */
export const answerOfTokens = (tokens: number): string => 'x'.repeat(Math.max(0, tokens) * 4);

const usd = (x: number) => `$${x < 0.01 && x > 0 ? x.toPrecision(2) : x.toFixed(2)}`;

/** One line for logs and `pift validate`. */
export function describeEstimate(e: CostEstimate): string {
  const cost = e.costUsd === undefined ? 'no price set (pricePerMillionTokens)' : `about ${usd(e.costUsd)}`;
  return (
    `${e.requests} requests, ~${e.promptTokens} prompt + at most ${e.outputTokens} answer tokens ` +
    `(${e.tokenCounting}); ${cost}; ${e.assumptions.join('; ')}`
  );
}

/**
 * The limits' first check, before a single request: a limit without the price it needs is a mistake in the input, and
 * an estimate above a limit is refused, naming the setting and the estimate.
 */
export function checkEstimate(e: CostEstimate, limits: CostLimits, step: string): void {
  const { maxTokens, maxCostUsd, setting } = limits;
  if (maxCostUsd !== undefined && !limits.pricePerMillionTokens) {
    refuse(setting, 'maxCostUsd', ` needs ${setting}.pricePerMillionTokens to count dollars`);
  }
  const above = (would: string, limit: string) =>
    `: the ${step} step would ${would}, above the limit of ${limit}; nothing was sent (estimate: ${describeEstimate(e)})`;
  if (maxTokens !== undefined && e.totalTokens > maxTokens) {
    refuse(setting, 'maxTokens', above(`take ~${e.totalTokens} tokens`, `${maxTokens}`));
  }
  if (maxCostUsd !== undefined && e.costUsd !== undefined && e.costUsd > maxCostUsd) {
    refuse(setting, 'maxCostUsd', above(`cost about ${usd(e.costUsd)}`, usd(maxCostUsd)));
  }
}

/** A limit passed: bad input, naming the limit's field. */
function refuse(setting: string, field: string, message: string): never {
  throw new InvalidDataError(`${setting}.${field}${message}`, { field: `${setting}.${field}` });
}

/** What a step spent, as the endpoint reported it. */
export interface Spent {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  /** Absent without a price. */
  costUsd?: number;
  /** Replies that reported no usage: their estimate was counted instead. */
  estimatedReplies?: number;
}

/**
 * The tokens one step attempt has spent, from each reply's `usage`. A request is admitted only when what was spent,
 * the estimates of the requests in flight and its own estimate all stay within the limits, so concurrent requests
 * cannot together overshoot them.
 */
export class SpendMeter {
  private spent = { requests: 0, promptTokens: 0, completionTokens: 0, estimatedReplies: 0 };
  private reserved: TokenCount = { prompt: 0, output: 0 };

  constructor(
    private readonly limits: CostLimits,
    private readonly step: string,
  ) {}

  /** Reserves a request's estimate, or stops the step (non-retryable, naming the limit) when it could pass one. */
  admit(next: TokenCount): TokenCount {
    const after = {
      prompt: this.spent.promptTokens + this.reserved.prompt + next.prompt,
      output: this.spent.completionTokens + this.reserved.output + next.output,
    };
    const { maxTokens, maxCostUsd, pricePerMillionTokens: price, setting } = this.limits;
    const stop = (field: string, what: string) =>
      refuse(
        setting,
        field,
        `: the ${this.step} step stopped before its next request: the endpoint reported ${this.describe()}, and ` +
          `with the requests in flight the next one could pass the limit of ${what}; what was committed is kept, ` +
          'a run with a higher limit goes on from there',
      );
    if (maxTokens !== undefined && after.prompt + after.output > maxTokens) stop('maxTokens', `${maxTokens} tokens`);
    if (maxCostUsd !== undefined && price && costOf(after, price)! > maxCostUsd) stop('maxCostUsd', usd(maxCostUsd));
    this.reserved.prompt += next.prompt;
    this.reserved.output += next.output;
    return next;
  }

  /** Releases a reservation: with the reply's usage when it came, its estimate when the reply had none. */
  settle(reserved: TokenCount, outcome: { usage?: { prompt_tokens?: number; completion_tokens?: number } } | 'failed') {
    this.reserved.prompt -= reserved.prompt;
    this.reserved.output -= reserved.output;
    if (outcome === 'failed') return;
    this.spent.requests += 1;
    const usage = outcome.usage;
    if (usage && typeof usage.prompt_tokens === 'number' && typeof usage.completion_tokens === 'number') {
      this.spent.promptTokens += usage.prompt_tokens;
      this.spent.completionTokens += usage.completion_tokens;
    } else {
      this.spent.promptTokens += reserved.prompt;
      this.spent.completionTokens += reserved.output;
      this.spent.estimatedReplies += 1;
    }
  }

  total(): Spent {
    return sumSpent([this.spent], this.limits.pricePerMillionTokens);
  }

  private describe(): string {
    const t = this.total();
    return (
      `${t.promptTokens} prompt + ${t.completionTokens} answer tokens in ${t.requests} replies` +
      (t.costUsd === undefined ? '' : ` (${usd(t.costUsd)})`)
    );
  }
}

/** What several meters spent together (a step scored in shards), in the form SpendMeter.total gives. */
export function sumSpent(parts: readonly Spent[], price?: Price): Spent {
  const sum = (k: keyof Spent) => parts.reduce((n, p) => n + (p[k] ?? 0), 0);
  const tokens = { prompt: sum('promptTokens'), output: sum('completionTokens') };
  const costUsd = costOf(tokens, price);
  const estimated = sum('estimatedReplies');
  return {
    requests: sum('requests'),
    promptTokens: tokens.prompt,
    completionTokens: tokens.output,
    ...(costUsd === undefined ? {} : { costUsd }),
    ...(estimated ? { estimatedReplies: estimated } : {}),
  };
}

/** What a step records of its cost: the estimate made before its first request, and what this attempt spent. */
export interface StepCost {
  estimate: CostEstimate;
  spent: Spent;
}

/** The estimate's check, said once in the log, before the step's first request; the meter that holds the limits. */
export function beforeFirstRequest(e: CostEstimate, limits: CostLimits, stepName: string): CostEstimate {
  log.info(`${stepName} cost estimate: ${describeEstimate(e)}`, { estimate: e });
  checkEstimate(e, limits, stepName);
  return e;
}
