import { Context } from '@temporalio/activity';
import { allowedLocation, openStore } from '../../store';
import type { BenchmarkPrompt } from '../datasets/benchmark-prompts';
import type { ActivityDeps } from '../deps';
import { InvalidDataError } from '../../common/failures';
import { hashInputs, sha256 } from '../artifacts/hashing';
import { toJsonl } from '../artifacts/jsonl';
import { evaluateKeys } from '../artifacts/run-keys';
import { runStep } from '../artifacts/step';
import {
  answersAt,
  judgeCacheMaterial,
  judgeParseRetries,
  judgeRequest,
  readJsonlAt,
  type CachedReply,
} from './judge-answers';
import {
  buildJudgeMessages,
  JUDGE_CORRECTION,
  JUDGE_DECODING,
  judgeQuestion,
  JUDGE_PROMPT_VERSION,
} from './judge-prompt';
import { buildWinRateReport, markdownRow, orderingCurves, resultsMarkdown } from '../results/report';
import { countOutcomes } from '../results/win-rate';
import { OFFLINE_JUDGE_LABEL, offlineJudgeReply } from './offline-reference-judge';
import { parseVerdict, verdictFromReplies, type PairVerdict } from '../results/verdict';
import { winRateStatistics } from '../results/statistics';
import { askAgain, askUntilParsed, complete, endpointFor, judgeModel } from '../llm/llm-client';
import { heartbeatEvery } from '../heartbeat';
import { runPool, storedPart, type PoolPart } from '../llm/row-pool';
import { answerCache } from '../llm/answer-cache';
import { beforeFirstRequest, estimateJudging, SpendMeter, type CostLimits, type Messages } from '../llm/cost-estimate';
import { convergenceFlags, unreliableModels } from '../../common/convergence';
import { lossRecord, trainingCurves } from '../artifacts/training-curves';
import { exactMatchAccuracy } from './accuracy';
import type { EvaluateInput, EvaluateResult, GenerateResult } from '../types';

/** One judged prompt, kept for audit: both raw replies, how they parsed, and the outcome. */
interface Judgment extends PairVerdict {
  id: string;
  replyOrder1: string;
  replyOrder2: string;
  candidateChars: number;
  baselineChars: number;
  /** Asks beyond the first of the two orders' replies, when unparseable replies were re-asked (absent when none). */
  reasked?: number;
}

/** A judge sees (question, Assistant 1's answer, Assistant 2's answer, reference) and replies "s1 s2". */
type Judge = {
  label: string;
  /** `unparsed`: this order's previous reply, which did not parse (see askAgain). */
  reply: (question: string, answer1: string, answer2: string, reference?: string, unparsed?: string) => Promise<string>;
  /** An online judge's model (the answer cache keys its replies by it) and spending limit; the offline judge is free. */
  online?: { model: string; meter: SpendMeter };
};

const REJECTED = '[request rejected: ';

export const judgingLimits = (input: EvaluateInput): CostLimits => ({
  pricePerMillionTokens: input.pricePerMillionTokens,
  maxCostUsd: input.maxCostUsd,
  maxTokens: input.maxTokens,
  setting: 'input.evaluation',
});

function makeJudge(deps: ActivityDeps, input: EvaluateInput): Judge {
  const endpoint = endpointFor(input.judge, 'input.evaluation.judge', deps.env, {
    maxRetries: 6,
    timeoutSeconds: 120,
    budget: { requestsPerMinute: input.requestsPerMinute, tokensPerMinute: input.tokensPerMinute },
    meter: new SpendMeter(judgingLimits(input), 'judging'),
  });
  if (!endpoint) {
    return {
      label: OFFLINE_JUDGE_LABEL,
      reply: async (question, answer1, answer2, reference) =>
        offlineJudgeReply({ question, reference: reference!, answer1, answer2 }),
    };
  }
  const { model, setting } = judgeModel(deps.env, input.judgeModel);
  return {
    label: model,
    online: { model, meter: endpoint.meter! },
    reply: async (question, answer1, answer2, _reference, unparsed) => {
      const request = askAgain(judgeRequest(model, question, answer1, answer2), unparsed, JUDGE_CORRECTION);
      const reply = await complete(endpoint, request, setting);
      // A rejected request becomes a reply that does not parse: the prompt counts as failed, still inside N.
      return 'rejected' in reply ? `${REJECTED}${reply.rejected}]` : reply.content;
    },
  };
}

/**
 * The paper's pairwise evaluation: every candidate (each stage's model) against the same One-off baseline, each prompt
 * judged in both orders, win / tie / loss by the two-order rule, win rate = 100·(W + T/2)/N − 50 per benchmark and on
 * average. Judgments are committed per (candidate, benchmark), so a retry only judges what is missing.
 */
export async function evaluate(deps: ActivityDeps, input: EvaluateInput): Promise<EvaluateResult> {
  const ctx = Context.current();
  const heartbeat = heartbeatEvery();
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const keys = evaluateKeys(input.runId);
  const judge = makeJudge(deps, input);
  const offline = !judge.online;
  const cache = answerCache(store, 'judge', !offline && (input.cache ?? true));
  const judged = {
    judge: judge.label,
    prompt: JUDGE_PROMPT_VERSION,
    benchmarks: input.benchmarks.map((b) => b.uri),
    baseline: input.baseline.answers,
    candidates: input.candidates.map((c) => c.answers),
    ...(input.orderings && { orderings: input.orderings }),
  };
  const reasks = offline ? 0 : judgeParseRetries(input);
  // Re-asks change what an online judge's unparseable replies become; the offline judge's replies always parse.
  const inputsHash = hashInputs(reasks ? { ...judged, reaskUnparseable: reasks } : judged);
  // A step finished before re-asks existed is kept.
  const earlierInputsHashes = reasks ? [hashInputs(judged)] : [];
  const progress = { judged: 0, total: 0 };
  return runStep(
    store,
    { runId: input.runId, step: 'evaluate', key: keys.manifest, inputsHash, earlierInputsHashes },
    async (out) => {
      const prompts = new Map<string, BenchmarkPrompt[]>();
      for (const b of input.benchmarks) {
        const rows = await readJsonlAt<BenchmarkPrompt>(deps, b.uri);
        if (offline && rows.some((r) => r.reference === undefined)) {
          throw new InvalidDataError(
            `benchmark "${b.name}" has prompts without a reference answer, which the offline judge needs; ` +
              'configure an OpenAI-compatible judge (PIFT_OPENAI_BASE_URL) or give reference answers',
            { field: `input.evaluation.benchmarks.${b.name}` },
          );
        }
        prompts.set(b.name, rows);
      }
      // Each answer file is read once: judging pairs every candidate with the same baseline, and the cost estimate
      // and the accuracy look at the same answers again.
      const answerFiles = new Map<string, Promise<Map<string, string>>>();
      const answersOf = (model: GenerateResult, bench: string) => {
        const uri = model.answers[bench];
        if (!answerFiles.has(uri)) answerFiles.set(uri, answersAt(deps, uri));
        return answerFiles.get(uri)!;
      };

      const pairs = input.candidates.flatMap((candidate) =>
        input.benchmarks.map((b) => ({ candidate, bench: b.name })),
      );
      const keyOf = (i: number) => keys.judgments(pairs[i].candidate.name, pairs[i].bench, inputsHash);
      /** One prompt to judge in both orders, with both answers; parts are the (candidate, benchmark) files. */
      type Item = { prompt: BenchmarkPrompt; candidate: string; baseline: string };
      async function* judgeParts(): AsyncGenerator<PoolPart<Item> & { items: Item[] }> {
        for (const [index, { candidate, bench }] of pairs.entries()) {
          const [mine, theirs] = await Promise.all([answersOf(candidate, bench), answersOf(input.baseline, bench)]);
          const items = prompts.get(bench)!.map((prompt) => ({
            prompt,
            candidate: mine.get(prompt.id) ?? '',
            baseline: theirs.get(prompt.id) ?? '',
          }));
          yield { index, items };
        }
      }
      /** A reply, re-asked while it does not parse (the paper's strict counting when re-asks are off). */
      // A parsed reply is cached with how many re-asks it took, so a run served from the cache reports the same.
      const replyOf = async (question: string, answer1: string, answer2: string, reference?: string) => {
        const key = judge.online && judgeCacheMaterial(judge.online.model, question, answer1, answer2, reasks);
        const cached = key && (await cache.get<CachedReply>(key));
        if (cached) return cached;
        const asked = await askUntilParsed(
          // A rejected request is asked as it was: the endpoint never saw a reply to correct.
          (previous?: string) =>
            judge.reply(question, answer1, answer2, reference, previous?.startsWith(REJECTED) ? undefined : previous),
          (reply) => parseVerdict(reply).ok,
          reasks,
        );
        if (key && parseVerdict(asked.reply).ok) cache.put(key, asked);
        return asked;
      };
      // Every answer is known by now: the estimate counts the real prompts (2 orders each) before the first request.
      const judgedPrompts: Messages[] = [];
      for await (const { items } of judge.online ? judgeParts() : []) {
        for (const { prompt: p, candidate, baseline } of items)
          judgedPrompts.push(buildJudgeMessages(judgeQuestion(p.instruction, p.input), baseline, candidate));
      }
      const estimate =
        judge.online &&
        beforeFirstRequest(
          estimateJudging(judgedPrompts, {
            price: input.pricePerMillionTokens,
            parseRetries: reasks,
            maxTokens: JUDGE_DECODING.max_tokens,
          }),
          judgingLimits(input),
          'judging',
        );
      if (estimate) Object.assign(progress, { estimate });
      const verdictsOf = new Map<number, Judgment[]>();
      progress.total = input.candidates.length * input.benchmarks.reduce((n, b) => n + b.prompts, 0);
      await runPool<Item, Judgment>({
        parts: judgeParts(),
        // Each item sends its two orders at once: `concurrency` counts requests.
        concurrency: Math.max(1, Math.ceil(input.concurrency / 2)),
        load: ({ index }) => storedPart<Judgment>(store, keyOf(index), prompts.get(pairs[index].bench)!.length),
        work: async ({ prompt: p, candidate: cand, baseline: baseAns }) => {
          const question = judgeQuestion(p.instruction, p.input);
          // Order 1 shows the baseline first, order 2 the candidate first (the paper's protocol).
          const [order1, order2] = await Promise.all([
            replyOf(question, baseAns, cand, p.reference),
            replyOf(question, cand, baseAns, p.reference),
          ]);
          progress.judged += 1;
          heartbeat(progress);
          const verdict = verdictFromReplies(order1.reply, order2.reply);
          const reasked = order1.reasked + order2.reasked;
          return {
            id: p.id,
            ...verdict,
            replyOrder1: order1.reply,
            replyOrder2: order2.reply,
            candidateChars: cand.length,
            baselineChars: baseAns.length,
            ...(reasked ? { reasked } : {}),
          };
        },
        save: ({ index }, judgments) => store.put(keyOf(index), toJsonl(judgments)),
        emit: async ({ index }, judgments) => {
          // Judgments are outputs kept for audit, listed in the manifest in (candidate, benchmark) order.
          const text = toJsonl(judgments);
          out.record({ key: keyOf(index), bytes: Buffer.byteLength(text), sha256: sha256(text) });
          verdictsOf.set(index, judgments);
          ctx.heartbeat(progress);
        },
      });
      await cache.flush();
      // Every (candidate, benchmark)'s judgments and counts, in the input's order.
      const cells = input.candidates.map((candidate, c) => ({
        model: candidate.name,
        perBenchmark: input.benchmarks.map((b, k) => {
          const judgments = verdictsOf.get(c * input.benchmarks.length + k)!;
          const counts = countOutcomes(judgments);
          // How many prompts had a reply re-asked, and how many still failed (counted in N).
          const reasked = judgments.filter((j) => (j.reasked ?? 0) > 0).length;
          // An online judge's re-asks are counted beside the other statistics; the offline judge never re-asks.
          const verdicts = offline ? judgments : judgments.map((v) => ({ ...v, reasks: v.reasked ?? 0 }));
          return { benchmark: b.name, verdicts, counts, judgeReplies: { reasked, stillFailed: counts.failed } };
        }),
      }));
      const report = buildWinRateReport({
        judge: judge.label,
        judgePromptVersion: JUDGE_PROMPT_VERSION,
        baseline: input.baseline.name,
        comparisons: cells,
      });
      // Beside every win rate, from the stored verdicts: interval, position bias, parse failures, lengths, sign test.
      const statistics = winRateStatistics(cells);
      if (!offline) {
        // Beside each win rate, in results.json: its prompts' re-asks and failures.
        report.comparisons.forEach((row, c) =>
          row.benchmarks.forEach((b, k) => Object.assign(b, { judgeReplies: cells[c].perBenchmark[k].judgeReplies })),
        );
      }
      // A win rate against a model whose training did not converge is marked; runs whose trainings all
      // converged read as before.
      const flags = convergenceFlags((await trainingCurves(store, input.runId)).map(lossRecord));
      const models = [input.baseline, ...input.candidates];
      const names = models.map((m) => m.name);
      const unreliable = unreliableModels(flags, input.baseline.name, names.slice(1));
      const markdown =
        resultsMarkdown({
          results: { ...report, offline },
          statistics,
          convergence: { flags, unreliable },
        }) + (offline ? '' : repliesMarkdown(report.benchmarks, cells, reasks));
      const byName = (name: string) => models.find((m) => m.name === name)!;
      const accuracy = await exactMatchAccuracy(names, prompts, (name, b) => answersOf(byName(name), b));
      const orderings = input.orderings && orderingCurves(report, input.orderings);
      const convergence = flags.length ? { flags, unreliable: [...unreliable] } : undefined;
      // What both results.json and the step's result end with, where there is any.
      const extras = {
        ...(accuracy && { accuracy }),
        ...(orderings && { orderings }),
        ...(convergence && { convergence }),
      };
      const judgeReplies = offline ? {} : { judgeReplies: { parseRetries: reasks } };
      const results = { ...report, offline, statistics, ...judgeReplies, ...extras };
      await out.put(keys.results, JSON.stringify(results, null, 2));
      await out.put(keys.markdown, markdown);
      const winRates = Object.fromEntries(
        report.comparisons.map((c) => [
          c.model,
          Object.fromEntries([
            ...c.benchmarks.map((b) => [b.benchmark, round1(b.winRate)]),
            ['average', round1(c.average)],
          ]),
        ]),
      );
      return {
        resultsUri: store.uriFor(keys.results),
        markdownUri: store.uriFor(keys.markdown),
        judge: judge.label,
        offline,
        winRates,
        markdown,
        ...extras,
        ...(estimate && { cost: { estimate, spent: judge.online!.meter.total() } }),
      } satisfies EvaluateResult;
    },
    { heartbeat: () => progress },
  );
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** The re-asked and still-failed prompts of each (model, benchmark), under the win-rate table. */
function repliesMarkdown(
  benchmarks: readonly string[],
  cells: ReadonlyArray<{
    model: string;
    perBenchmark: Array<{ judgeReplies: { reasked: number; stillFailed: number } }>;
  }>,
  parseRetries: number,
): string {
  const rule = parseRetries
    ? `an unparseable reply was asked again up to ${parseRetries} times`
    : "unparseable replies were not asked again (the paper's strict counting)";
  const lines = [
    '',
    `Judge replies (${rule}): prompts re-asked / still failed.`,
    '',
    `| Model | ${benchmarks.join(' | ')} |`,
    `|---|${benchmarks.map(() => '---:|').join('')}`,
    ...cells.map(({ model, perBenchmark }) =>
      markdownRow([model, ...perBenchmark.map(({ judgeReplies: r }) => `${r.reasked} / ${r.stillFailed}`)]),
    ),
  ];
  return `${lines.join('\n')}\n`;
}
