import type { ResolvedInput } from '../common/settings/schema';
import type { BenchmarkPrompt } from '../activities/datasets/benchmark-prompts';
import type { DatasetRow } from '../activities/datasets/rows';
import { buildJudgeMessages, JUDGE_DECODING, judgeQuestion } from '../activities/evaluate/judge-prompt';
import {
  answerOfTokens,
  approxTokens,
  checkEstimate,
  describeEstimate,
  estimateJudging,
  type ScoringEstimate,
} from '../activities/llm/cost-estimate';
import { asksEndpoint } from '../activities/llm/llm-client';
import { scoreMessagesFor, scoringEstimateFor } from '../activities/score/score-prompt';
import { heldoutRows, type PreflightCheck } from '../activities/validate/check-input';
import { isHubDataset } from '../activities/validate/hub-dataset';

const free = (kind: string, what: string) =>
  kind === 'auto'
    ? `this machine sets no LLM endpoint, so \`auto\` is the offline ${what} here (a worker with one pays)`
    : `the ${kind} ${what} asks no LLM endpoint`;

/** What the cost preview needs of the rows and prompts checkInput reads, gathered as they pass (one read of each). */
export class CostInputs {
  rows = 0;
  /** The first rows' questions, which stand in for the held-out prompts. */
  readonly firstQuestions: string[] = [];
  readonly benchmarkQuestions: string[] = [];
  readonly scoring?: ScoringEstimate;

  constructor(
    private readonly cfg: ResolvedInput,
    env: NodeJS.ProcessEnv,
  ) {
    if (asksEndpoint(cfg.scorer.kind, env)) this.scoring = scoringEstimateFor(cfg);
  }

  row = (row: DatasetRow): void => {
    this.scoring?.add(scoreMessagesFor(row));
    if (this.firstQuestions.length < this.cfg.evaluation.heldoutMax)
      this.firstQuestions.push(judgeQuestion(row.instruction, row.input));
    this.rows += 1;
  };

  prompt = (p: BenchmarkPrompt): void => {
    this.benchmarkQuestions.push(judgeQuestion(p.instruction, p.input));
  };
}

/**
 * What scoring and judging will cost, as `pift validate` shows it before anything is started, with the steps' own
 * limits checked against it (an estimate above a limit fails here as it would fail the step). This machine's endpoint
 * settings stand in for the workers'; `read` holds what checkInput read of the dataset and benchmarks.
 */
export function costPreview(env: NodeJS.ProcessEnv, cfg: ResolvedInput, read: CostInputs): PreflightCheck[] {
  const checks: PreflightCheck[] = [];
  if (!read.scoring) {
    checks.push({ field: 'input.scorer cost', checked: `nothing: ${free(cfg.scorer.kind, 'scorer')}` });
  } else if (isHubDataset(cfg.dataset)) {
    checks.push({
      field: 'input.scorer cost',
      checked: 'not estimated here: a hub dataset is read when the run starts',
    });
  } else {
    const estimate = read.scoring.result();
    checkEstimate(estimate, { ...cfg.scorer, setting: 'input.scorer' }, 'scoring');
    checks.push({ field: 'input.scorer cost', checked: describeEstimate(estimate) });
  }

  const ev = cfg.evaluation;
  if (cfg.baseline.mode === 'skip' || cfg.training.mode === 'export-only') {
    checks.push({ field: 'input.evaluation cost', checked: 'nothing: no evaluation' });
  } else if (!asksEndpoint(ev.judge, env)) {
    checks.push({ field: 'input.evaluation cost', checked: `nothing: ${free(ev.judge, 'judge')}` });
  } else {
    // Without benchmarks the held-out rows are drawn by seed when the run segments; as many rows stand in for them.
    const n = heldoutRows(cfg, read.rows);
    const questions = ev.benchmarks.length ? read.benchmarkQuestions : read.firstQuestions.slice(0, n);
    const heldout = ev.benchmarks.length
      ? ''
      : `; the held-out prompts are drawn by seed, the first ${n} rows stand in for them`;
    // Answers do not exist before generation: each is taken at its longest, maxNewTokens, else maxLength.
    const candidates = (ev.perStage ? cfg.stages.count : 1) * (1 + ev.controls.length);
    const answerTokens = ev.maxNewTokens ?? ev.maxLength;
    const judged = questions.map((question) => {
      const answer = answerOfTokens(ev.maxNewTokens ?? Math.max(0, ev.maxLength - approxTokens(question)));
      return buildJudgeMessages(question, answer, answer);
    });
    // Each candidate model's answers to every question.
    const prompts = Array.from({ length: candidates }, () => judged).flat();
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
