import { log } from '@temporalio/activity';
import { InvalidDataError } from '../../common/failures';
import { allowedLocation, openObject, openStore } from '../../store';
import { hashInputs } from '../artifacts/hashing';
import { readJsonl } from '../artifacts/jsonl';
import type { BenchmarkPrompt } from '../datasets/parse';
import type { ActivityDeps } from '../deps';
import { answerCache } from '../llm/answer-cache';
import type { BatchItem } from '../llm/batch-api';
import {
  checkBatchCost,
  batchCaps,
  collectRound,
  countRound,
  itemState,
  notCached,
  PastOutcomes,
  spentTokens,
  submitRound,
  type BatchCollected,
  type BatchSubmitted,
  type RoundContext,
} from '../llm/batch-rounds';
import { askAgain, endpointFor, judgeModel } from '../llm/llm-client';
import type { EvaluateInput } from '../types';
import { judgingLimits } from './evaluate';
import { judgeCacheMaterial, judgeRequest, type CachedReply } from './judge-answers';
import { JUDGE_CORRECTION, judgeQuestion } from './judge-prompt';
import { parseVerdict } from '../results/parse-verdict';

/**
 * `evaluation.mode: "batch"`: every (model, benchmark, prompt, order) judgment the evaluate step would ask and the
 * answer cache lacks goes through the Batch API; each reply that parses goes into the cache under the key and with
 * the value the online pool would have written, so the evaluate step that follows takes it from there and asks online
 * only what the batches left.
 */

export interface JudgeBatchInput extends EvaluateInput {
  round: number;
}

export interface JudgeCollectInput extends JudgeBatchInput {
  batchId: string;
}

const SETTING = 'input.evaluation.mode';
const parses = (content: string) => parseVerdict(content).ok;

interface JudgeItem {
  customId: string;
  material: Record<string, unknown>;
  position: number;
}

interface Judging {
  ctx: RoundContext;
  parseRetries: number;
  /**
   * The position of every distinct request by its custom_id (the start of its cache key: equal requests are asked
   * once, in the place of the first). Only ids are kept: requests are built again on each walk, so the step's memory
   * does not grow with benchmarks' answers times candidates times orders.
   */
  positions: Map<string, number>;
  /** The distinct requests in position order, from the benchmark and answer files. */
  walk: () => AsyncGenerator<JudgeItem & { request: BatchItem['request'] }>;
  cache: ReturnType<typeof answerCache>;
  workDir: string;
}

async function readJsonlAt<T>(deps: ActivityDeps, uri: string): Promise<T[]> {
  const { store, key } = openObject(uri, deps.env);
  return readJsonl<T>(store, key);
}

async function answersAt(deps: ActivityDeps, uri: string): Promise<Map<string, string>> {
  const answers = await readJsonlAt<{ id: string; answer: string }>(deps, uri);
  return new Map(answers.map((a) => [a.id, a.answer]));
}

/** What a round needs, or undefined for the offline judge (it asks no endpoint). */
async function judging(deps: ActivityDeps, input: EvaluateInput): Promise<Judging | undefined> {
  const endpoint = endpointFor(input.judge, 'input.evaluation.judge', deps.env, { maxRetries: 6, timeoutSeconds: 120 });
  if (!endpoint) return undefined;
  if (input.cache === false) {
    throw new InvalidDataError(
      'input.evaluation.mode "batch" needs input.evaluation.cache (the batches fill the cache)',
      { field: 'input.evaluation.cache' },
    );
  }
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const { model } = judgeModel(deps.env, input.judgeModel);
  // The evaluate step's rule: re-asks only when on.
  const parseRetries = input.reaskUnparseable === false ? 0 : (input.parseRetries ?? 2);

  /** Every judgment in the evaluate step's order, repeats included; one benchmark's answers are read at a time. */
  async function* everyJudgment() {
    for (const bench of input.benchmarks) {
      const prompts = await readJsonlAt<BenchmarkPrompt>(deps, bench.uri);
      const theirs = await answersAt(deps, input.baseline.answers[bench.name]);
      for (const candidate of input.candidates) {
        const mine = await answersAt(deps, candidate.answers[bench.name]);
        for (const p of prompts) {
          const question = judgeQuestion(p.instruction, p.input);
          const cand = mine.get(p.id) ?? '';
          const base = theirs.get(p.id) ?? '';
          // Order 1 shows the baseline first, order 2 the candidate first, as the evaluate step asks them.
          for (const [answer1, answer2] of [
            [base, cand],
            [cand, base],
          ]) {
            const material = judgeCacheMaterial(model, question, answer1, answer2, parseRetries);
            const customId = `j-${hashInputs(material).slice(0, 40)}`;
            yield { customId, material, request: () => judgeRequest(model, question, answer1, answer2) };
          }
        }
      }
    }
  }

  const positions = new Map<string, number>();
  for await (const { customId } of everyJudgment()) {
    if (!positions.has(customId)) positions.set(customId, positions.size);
  }
  async function* walk() {
    let next = 0;
    for await (const { customId, material, request } of everyJudgment()) {
      // A repeat's id was placed before: only the first occurrence has the next position.
      if (positions.get(customId) !== next) continue;
      yield { customId, material, position: next, request: request() };
      next += 1;
    }
  }
  return {
    ctx: { endpoint, store, runId: input.runId, step: 'evaluate', setting: SETTING, caps: batchCaps(deps.env) },
    parseRetries,
    positions,
    walk,
    // The online step finds these answers only here: flushed to disk, unlike its own entries.
    cache: answerCache(store, 'judge', true, true),
    workDir: deps.workDir,
  };
}

/** Walks the requests the cache lacks with their state after the rounds before `round`. */
async function eachUncached(
  j: Judging,
  round: number,
  visit: (
    item: JudgeItem & { request: BatchItem['request'] },
    state: ReturnType<typeof itemState>,
  ) => Promise<void> | void,
): Promise<void> {
  const past = await PastOutcomes.open(
    j.ctx.store,
    j.ctx.runId,
    'evaluate',
    round,
    (customId) => j.positions.get(customId) ?? -1,
  );
  const isCached = async ({ material }: JudgeItem) => (await j.cache.get(material)) !== undefined;
  try {
    for await (const item of notCached(j.walk(), isCached)) {
      await visit(item, itemState(await past.get(item.customId, item.position), j.parseRetries, parses));
    }
  } finally {
    await past.close();
  }
}

/** Sends round `round`'s batch of judge requests (or finds the one already sent); no batch id when none is left. */
export async function submitJudgeBatch(deps: ActivityDeps, input: JudgeBatchInput): Promise<BatchSubmitted> {
  const j = await judging(deps, input);
  if (!j) return { round: input.round, requests: 0 };
  return submitRound(j.ctx, input.round, j.workDir, {
    ask: (add) =>
      eachUncached(j, input.round, async ({ customId, request }, state) => {
        if (!state.done) await add({ customId, request: askAgain(request, state.unparsed, JUDGE_CORRECTION) });
      }),
    check: async (asked) => {
      if (asked.requests) {
        const spent = await spentTokens(j.ctx.store, j.ctx.runId, 'evaluate', input.round);
        checkBatchCost(asked, spent, judgingLimits(input), 'judging');
      }
      log.info('judging batch', { round: input.round, requests: asked.requests, judgments: j.positions.size });
    },
  });
}

/** Reads round `round`'s finished batch and puts every reply that parsed into the answer cache. */
export async function collectJudgeBatch(deps: ActivityDeps, input: JudgeCollectInput): Promise<BatchCollected> {
  const j = await judging(deps, input);
  if (!j) throw new Error('a batch was submitted for the offline judge');
  await collectRound(j.ctx, input.round, input.batchId, j.workDir);
  let pending = 0;
  let cached = 0;
  await eachUncached(j, input.round + 1, ({ material }, state) => {
    if (!state.done) {
      pending += 1;
      return;
    }
    // A reply that stayed unparseable or a rejected request is not cached, as online: the evaluate step asks again.
    if (!('content' in state.outcome) || !parses(state.outcome.content)) return;
    const value: CachedReply = { reply: state.outcome.content, reasked: state.asks - 1 };
    j.cache.put(material, value);
    cached += 1;
  });
  await j.cache.flush();
  return countRound(j.ctx, input.round, input.batchId, parses, pending, cached);
}
