import { Context } from '@temporalio/activity';
import pLimit from 'p-limit';
import { allowedLocation, openObject, openStore } from '../../store';
import type { BenchmarkPrompt } from '../datasets/parse';
import type { ActivityDeps } from '../deps';
import { InvalidDataError } from '../../common/failures';
import { hashInputs } from '../artifacts/hashing';
import { readJsonl } from '../artifacts/jsonl';
import { jsonlPart } from '../artifacts/parts';
import { evaluateKeys } from '../artifacts/run-keys';
import { runStep } from '../artifacts/step';
import {
  buildJudgeRequest,
  buildWinRateReport,
  countOutcomes,
  judgeQuestion,
  JUDGE_PROMPT_VERSION,
  OFFLINE_JUDGE_LABEL,
  offlineJudgeReply,
  renderWinRateMarkdown,
  verdictFromReplies,
  type PairVerdict,
} from './protocol';
import { complete, endpointFor, judgeModel } from '../llm/llm-client';
import { exactMatchAccuracy } from './accuracy';
import { orderingCurves } from './orderings';
import type { EvaluateInput, EvaluateResult, GenerateResult } from '../types';

/** One judged prompt, kept for audit: both raw replies, how they parsed, and the outcome. */
interface Judgment extends PairVerdict {
  id: string;
  replyOrder1: string;
  replyOrder2: string;
  candidateChars: number;
  baselineChars: number;
}

/** A judge sees (question, Assistant 1's answer, Assistant 2's answer, reference) and replies "s1 s2". */
type Judge = {
  label: string;
  offline: boolean;
  reply: (question: string, answer1: string, answer2: string, reference?: string) => Promise<string>;
};

function makeJudge(deps: ActivityDeps, input: EvaluateInput): Judge {
  const endpoint = endpointFor(input.judge, 'input.evaluation.judge', deps.env, { maxRetries: 6, timeoutSeconds: 120 });
  if (!endpoint) {
    return {
      label: OFFLINE_JUDGE_LABEL,
      offline: true,
      reply: async (question, answer1, answer2, reference) =>
        offlineJudgeReply({ question, reference: reference!, answer1, answer2 }),
    };
  }
  const { model, setting } = judgeModel(deps.env, input.judgeModel);
  return {
    label: model,
    offline: false,
    reply: async (question, answer1, answer2) => {
      const { promptVersion: _v, ...request } = buildJudgeRequest(question, answer1, answer2, { model });
      const reply = await complete(endpoint, request, setting);
      // A rejected request becomes a reply that does not parse: the prompt counts as failed, still inside N.
      return 'rejected' in reply ? `[request rejected: ${reply.rejected}]` : reply.content;
    },
  };
}

async function readJsonlAt<T>(deps: ActivityDeps, uri: string): Promise<T[]> {
  const { store, key } = openObject(uri, deps.env);
  return readJsonl<T>(store, key);
}

/**
 * The paper's pairwise evaluation: every candidate (each stage's model) against the same One-off baseline, each prompt
 * judged in both orders, win / tie / loss by the two-order rule, win rate = 100·(W + T/2)/N − 50 per benchmark and on
 * average. Judgments are committed per (candidate, benchmark), so a retry only judges what is missing.
 */
export async function evaluate(deps: ActivityDeps, input: EvaluateInput): Promise<EvaluateResult> {
  const ctx = Context.current();
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const keys = evaluateKeys(input.runId);
  const judge = makeJudge(deps, input);
  const inputsHash = hashInputs({
    judge: judge.label,
    prompt: JUDGE_PROMPT_VERSION,
    benchmarks: input.benchmarks.map((b) => b.uri),
    baseline: input.baseline.answers,
    candidates: input.candidates.map((c) => c.answers),
    ...(input.orderings && { orderings: input.orderings }),
  });
  const progress = { judged: 0, total: 0 };
  return runStep(
    store,
    { runId: input.runId, step: 'evaluate', key: keys.manifest, inputsHash },
    async (out) => {
      const prompts = new Map<string, BenchmarkPrompt[]>();
      for (const b of input.benchmarks) {
        const rows = await readJsonlAt<BenchmarkPrompt>(deps, b.uri);
        if (judge.offline && rows.some((r) => r.reference === undefined)) {
          throw new InvalidDataError(
            `benchmark "${b.name}" has prompts without a reference answer, which the offline judge needs; ` +
              'configure an OpenAI-compatible judge (PIFT_OPENAI_BASE_URL) or give reference answers',
            { field: `input.evaluation.benchmarks.${b.name}` },
          );
        }
        prompts.set(b.name, rows);
      }
      const answersOf = async (model: GenerateResult, bench: string) =>
        new Map(
          (await readJsonlAt<{ id: string; answer: string }>(deps, model.answers[bench])).map((a) => [a.id, a.answer]),
        );

      const limit = pLimit(input.concurrency);
      const comparisons = [];
      progress.total = input.candidates.length * input.benchmarks.reduce((n, b) => n + b.prompts, 0);
      for (const candidate of input.candidates) {
        const perBenchmark = [];
        for (const bench of input.benchmarks) {
          const key = keys.judgments(candidate.name, bench.name, inputsHash);
          const benchPrompts = prompts.get(bench.name)!;
          const part = { rows: benchPrompts.length, output: true };
          const judgments = await jsonlPart<Judgment>(out, key, part, async () => {
            const [mine, theirs] = await Promise.all([
              answersOf(candidate, bench.name),
              answersOf(input.baseline, bench.name),
            ]);
            return Promise.all(
              benchPrompts.map((p) =>
                limit(async () => {
                  const question = judgeQuestion(p.instruction, p.input);
                  const cand = mine.get(p.id) ?? '';
                  const baseAns = theirs.get(p.id) ?? '';
                  // Order 1 shows the baseline first, order 2 the candidate first (the paper's protocol).
                  const [replyOrder1, replyOrder2] = await Promise.all([
                    judge.reply(question, baseAns, cand, p.reference),
                    judge.reply(question, cand, baseAns, p.reference),
                  ]);
                  progress.judged += 1;
                  ctx.heartbeat(progress);
                  const verdict = verdictFromReplies(replyOrder1, replyOrder2);
                  return {
                    id: p.id,
                    ...verdict,
                    replyOrder1,
                    replyOrder2,
                    candidateChars: cand.length,
                    baselineChars: baseAns.length,
                  };
                }),
              ),
            );
          });
          perBenchmark.push({ benchmark: bench.name, counts: countOutcomes(judgments) });
          ctx.heartbeat(progress);
        }
        comparisons.push({ model: candidate.name, perBenchmark });
      }

      const report = buildWinRateReport({
        judge: judge.label,
        judgePromptVersion: JUDGE_PROMPT_VERSION,
        baseline: input.baseline.name,
        comparisons,
      });
      const markdown =
        (judge.offline
          ? "> Offline evaluation: scores come from a reference-based judge, not from the paper's GPT-4 judge.\n\n"
          : '') + renderWinRateMarkdown(report);
      const models = [input.baseline, ...input.candidates];
      const accuracy = await exactMatchAccuracy(
        models.map((m) => m.name),
        prompts,
        (name, bench) =>
          answersOf(
            models.find((m) => m.name === name)!,
            bench,
          ),
      );
      const orderings = input.orderings && orderingCurves(report, input.orderings);
      const resultsJson = JSON.stringify(
        { ...report, offline: judge.offline, ...(accuracy && { accuracy }), ...(orderings && { orderings }) },
        null,
        2,
      );
      await out.put(keys.results, resultsJson);
      await out.put(keys.markdown, markdown);
      const winRates: Record<string, Record<string, number>> = {};
      for (const c of report.comparisons) {
        winRates[c.model] = Object.fromEntries([
          ...c.benchmarks.map((b) => [b.benchmark, round1(b.winRate)]),
          ['average', round1(c.average)],
        ]);
      }
      const result: EvaluateResult = {
        resultsUri: store.uriFor(keys.results),
        markdownUri: store.uriFor(keys.markdown),
        judge: judge.label,
        offline: judge.offline,
        winRates,
        markdown,
        ...(accuracy && { accuracy }),
        ...(orderings && { orderings }),
      };
      return result;
    },
    { heartbeat: () => progress },
  );
}

const round1 = (x: number) => Math.round(x * 10) / 10;
