/**
 * A finished run of the demo's size written straight into a store, in the layout run-keys.ts names: 300 scored rows,
 * three stages and a One-off baseline with logged losses, 48 held-out prompts answered by four models, and the
 * evaluation's judgments from a scripted judge. The report is built from nothing else.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalStore, type ObjectStore } from '../../store';
import { toJsonl } from '../../activities/artifacts/jsonl';
import { sha256 } from '../../activities/artifacts/hashing';
import { commitManifest } from '../../activities/artifacts/manifest';
import {
  benchmarkKeys,
  evaluateKeys,
  generateKeys,
  scoreKeys,
  segmentKeys,
  trainKeys,
} from '../../activities/artifacts/run-keys';
import { buildWinRateReport } from '../../activities/results/report';
import { countOutcomes } from '../../activities/results/win-rate';
import { verdictFromReplies, type Preference } from '../../activities/results/verdict';
import { winRateStatistics } from '../../activities/results/statistics';

export const HOSTILE_ANSWER = '</script><img src=x onerror="window.__pwned=1"> & <b>bold?</b> | pipe';
export const HOSTILE_PROMPT = '<script>window.__pwned=2</script> What is 2 < 3?';

/** A small deterministic generator, so the fixture is the same on every machine. */
function lcg(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

export async function writeReportFixture(
  opts: { runId?: string; store?: ObjectStore; withStatistics?: boolean } = {},
): Promise<{ store: ObjectStore; runId: string }> {
  const store = opts.store ?? new LocalStore(mkdtempSync(join(tmpdir(), 'pift-report-')));
  const runId = opts.runId ?? 'demo-report';
  const random = lcg(3517);
  const put = async (key: string, body: string) => {
    await store.put(key, body);
    return { key, bytes: Buffer.byteLength(body), sha256: sha256(body) };
  };

  // Scoring: 300 rows on the paper's 1-5 scale, a few unparsed.
  const scores = Array.from({ length: 300 }, (_, i) => ({
    id: `r${i}`,
    // One decimal, as the offline heuristic scorer the demo uses writes them.
    score: i % 97 === 13 ? null : 1 + Math.floor(random() * 41) / 10,
    scorer: 'offline-heuristic-v1',
  }));
  await put(scoreKeys(runId).scores, toJsonl(scores));
  const thresholds = [1.5, 3.5];
  const stageOf = (s: number) => 1 + thresholds.filter((t) => s >= t).length;
  const scored = scores.filter((s) => s.score !== null) as Array<{ score: number }>;
  const stages = [1, 2, 3].map((k) => {
    const inStage = scored.filter((s) => stageOf(s.score) === k).map((s) => s.score);
    return { stage: k, rows: inStage.length, minScore: Math.min(...inStage), maxScore: Math.max(...inStage) };
  });
  await put(
    segmentKeys(runId).summary,
    JSON.stringify({
      rule: 'thresholds',
      thresholds,
      stages,
      oneOff: scored.length,
      heldout: 48,
      unscored: 300 - scored.length,
    }),
  );

  // Training: each stage's losses fall, the baseline's over the same total steps.
  const stageSteps = stages.map((s) => Math.ceil(s.rows / 8) * 3);
  const trainings: Array<[string, number]> = [
    ...stageSteps.map((n, i): [string, number] => [`stage-${i + 1}`, n]),
    ['one-off', stageSteps.reduce((a, b) => a + b, 0)],
  ];
  for (const [i, [name, steps]] of trainings.entries()) {
    const stride = Math.max(1, Math.ceil(steps / 200));
    const losses = Array.from(
      { length: Math.ceil(steps / stride) },
      (_, j) => 3.2 - i * 0.3 - 1.5 * (j / steps) * stride,
    );
    const keys = trainKeys(runId, name);
    const out = await put(keys.losses, JSON.stringify({ losses, first: losses[0], last: losses.at(-1) }));
    await commitManifest(store, keys.manifest, {
      runId,
      step: `train/${name}`,
      inputsHash: 'fixture',
      outputs: [out],
      result: {
        name,
        modelUri: store.uriFor(`${keys.final}`),
        steps,
        lossFirst: losses[0],
        lossLast: losses.at(-1)!,
        resumedFromStep: 0,
        attempts: 1,
        reused: false,
      },
    });
  }

  // The held-out benchmark and each model's answers; prompt 0 and one answer are hostile HTML.
  const bench = 'heldout';
  const prompts = Array.from({ length: 48 }, (_, i) => ({
    id: `h${i}`,
    instruction: i === 0 ? HOSTILE_PROMPT : `Add ${i} and ${i + 1}.`,
    input: i % 3 === 0 ? `numbers ${i}, ${i + 1}` : '',
    reference: String(2 * i + 1),
  }));
  await put(benchmarkKeys(runId).prompts(bench), toJsonl(prompts));
  const models = ['stage-1', 'stage-2', 'stage-3', 'one-off'];
  const answers = new Map<string, string[]>();
  for (const [m, model] of models.entries()) {
    const rows = prompts.map((p, i) => ({
      id: p.id,
      answer: model === 'stage-3' && i === 0 ? HOSTILE_ANSWER : random() < 0.2 + 0.2 * m ? p.reference : `${i + m}`,
    }));
    answers.set(
      model,
      rows.map((r) => r.answer),
    );
    await put(generateKeys(runId, model).answers(bench), toJsonl(rows));
  }

  // The scripted judge: later stages win more often; some verdicts flip with the order, a few replies are garbage.
  const prefs: Preference[] = ['better', 'tie', 'worse'];
  const order1Reply = { better: '6 8', tie: '7 7', worse: '9 5' };
  const order2Reply = { better: '8 6', tie: '7 7', worse: '5 9' };
  const outputs = [];
  const comparisons = [];
  const judged = [];
  const evalKeys = evaluateKeys(runId);
  for (const [m, model] of models.slice(0, 3).entries()) {
    const judgments = prompts.map((p, i) => {
      const pick = () => prefs[Math.min(2, Math.floor(random() * (3 - m * 0.6)))];
      const replyOrder1 = i === 7 + m ? 'no idea' : order1Reply[pick()];
      const replyOrder2 = order2Reply[pick()];
      return {
        id: p.id,
        ...verdictFromReplies(replyOrder1, replyOrder2),
        replyOrder1,
        replyOrder2,
        candidateChars: answers.get(model)![i].length,
        baselineChars: answers.get('one-off')![i].length,
      };
    });
    outputs.push(await put(evalKeys.judgments(model, bench, 'f1f2f3f4f5f6f7f8'), toJsonl(judgments)));
    comparisons.push({ model, perBenchmark: [{ benchmark: bench, counts: countOutcomes(judgments) }] });
    judged.push({ model, perBenchmark: [{ benchmark: bench, verdicts: judgments }] });
  }
  const report = buildWinRateReport({ judge: 'offline-reference-judge-v1', baseline: 'one-off', comparisons });
  const statistics = opts.withStatistics === false ? {} : { statistics: winRateStatistics(judged) };
  outputs.push(await put(evalKeys.results, JSON.stringify({ ...report, offline: true, ...statistics }, null, 2)));
  await commitManifest(store, evalKeys.manifest, {
    runId,
    step: 'evaluate',
    inputsHash: 'fixture',
    outputs,
    result: {},
  });
  return { store, runId };
}
