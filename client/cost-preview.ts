import type { ResolvedInput } from '../common/input';
import { benchmarkPromptBuilder } from '../activities/datasets/parse';
import { readDatasetRows } from '../activities/datasets/read-dataset';
import type { ActivityDeps } from '../activities/deps';
import { buildJudgeMessages, JUDGE_DECODING, judgeQuestion } from '../activities/evaluate/judge-prompt';
import {
  answerOfTokens,
  approxTokens,
  checkEstimate,
  describeEstimate,
  estimateJudging,
  ScoringEstimate,
  type CostEstimate,
  type Messages,
} from '../activities/llm/cost-estimate';
import { asksEndpoint } from '../activities/llm/llm-client';
import { scoreMessagesFor, SCORE_DECODING } from '../activities/score/score-prompt';
import type { PreflightCheck } from '../activities/validate/preflight';

const free = (kind: string, what: string) =>
  kind === 'auto'
    ? `this machine sets no LLM endpoint, so \`auto\` is the offline ${what} here (a worker with one pays)`
    : `the ${kind} ${what} asks no LLM endpoint`;

/**
 * What scoring and judging will cost, as `pift validate` shows it before anything is started, with the steps' own
 * limits checked against it (an estimate above a limit fails here as it would fail the step). This machine's endpoint
 * settings stand in for the workers'.
 */
export async function costPreview(
  deps: Pick<ActivityDeps, 'env' | 'fileRoots' | 'workDir'>,
  cfg: ResolvedInput,
): Promise<PreflightCheck[]> {
  const checks: PreflightCheck[] = [];
  // One read of the dataset, keeping only what the estimates need: the scoring estimate, the number of rows and the
  // first rows' questions, which stand in for the held-out prompts.
  let read: { rows: number; scoring?: CostEstimate; firstQuestions: string[] } | undefined;
  const readDataset = async () => {
    if (read) return read;
    const scoring = asksEndpoint(cfg.scorer.kind, deps.env)
      ? new ScoringEstimate({
          samples: cfg.scorer.samples,
          price: cfg.scorer.pricePerMillionTokens,
          parseRetries: cfg.scorer.parseRetries,
          maxTokens: SCORE_DECODING.max_tokens,
        })
      : undefined;
    const firstQuestions: string[] = [];
    let rows = 0;
    for await (const row of readDatasetRows(deps, cfg.dataset, {
      format: cfg.datasetFormat,
      columns: cfg.datasetColumns,
      maxRowBytes: cfg.maxRowBytes,
    })) {
      scoring?.add(scoreMessagesFor(row));
      if (firstQuestions.length < cfg.evaluation.heldoutMax)
        firstQuestions.push(judgeQuestion(row.instruction, row.input));
      rows += 1;
    }
    read = { rows, scoring: scoring?.result(), firstQuestions };
    return read;
  };

  if (!asksEndpoint(cfg.scorer.kind, deps.env)) {
    checks.push({ field: 'input.scorer cost', checked: `nothing: ${free(cfg.scorer.kind, 'scorer')}` });
  } else {
    const estimate = (await readDataset()).scoring!;
    checkEstimate(estimate, { ...cfg.scorer, setting: 'input.scorer' }, 'scoring');
    checks.push({ field: 'input.scorer cost', checked: describeEstimate(estimate) });
  }

  const ev = cfg.evaluation;
  if (cfg.baseline.mode === 'skip' || cfg.training.mode === 'export-only') {
    checks.push({ field: 'input.evaluation cost', checked: 'nothing: no evaluation' });
  } else if (!asksEndpoint(ev.judge, deps.env)) {
    checks.push({ field: 'input.evaluation cost', checked: `nothing: ${free(ev.judge, 'judge')}` });
  } else {
    const questions: string[] = [];
    let heldout = '';
    if (ev.benchmarks.length) {
      for (const [i, bench] of ev.benchmarks.entries()) {
        const file = readDatasetRows(deps, bench.uri, {
          field: `input.evaluation.benchmarks[${i}].uri`,
          maxRowBytes: cfg.maxRowBytes,
        });
        const build = benchmarkPromptBuilder(file.source, bench.name);
        for await (const rec of file.records()) {
          const p = build(rec);
          questions.push(judgeQuestion(p.instruction, p.input));
        }
      }
    } else {
      // The held-out rows are drawn by seed when the run segments; as many rows of the dataset stand in for them.
      const { rows, firstQuestions } = await readDataset();
      const n = Math.min(ev.heldoutMax, Math.floor(rows * ev.heldoutFraction));
      questions.push(...firstQuestions.slice(0, n));
      heldout = `; the held-out prompts are drawn by seed, the first ${n} rows stand in for them`;
    }
    // Answers do not exist before generation: each is taken at its longest, maxNewTokens, else maxLength.
    const candidates = (ev.perStage ? cfg.stages.count : 1) * (1 + ev.controls.length);
    const answerTokens = ev.maxNewTokens ?? ev.maxLength;
    const prompts: Messages[] = [];
    for (let c = 0; c < candidates; c++) {
      for (const question of questions) {
        const answer = answerOfTokens(ev.maxNewTokens ?? Math.max(0, ev.maxLength - approxTokens(question)));
        prompts.push(buildJudgeMessages(question, answer, answer));
      }
    }
    const estimate = estimateJudging(prompts, {
      price: ev.pricePerMillionTokens,
      parseRetries: ev.reaskUnparseable ? ev.parseRetries : 0,
      maxTokens: JUDGE_DECODING.max_tokens,
      assumptions: [
        `${questions.length} prompts x ${candidates} candidate models x 2 orders; answers not generated yet, each ` +
          `counted at ${ev.maxNewTokens === undefined ? `maxLength (${answerTokens}) less its prompt` : `maxNewTokens (${answerTokens})`} tokens${heldout}`,
      ],
    });
    checkEstimate(estimate, { ...ev, setting: 'input.evaluation' }, 'judging');
    checks.push({ field: 'input.evaluation cost', checked: describeEstimate(estimate) });
  }
  return checks;
}
