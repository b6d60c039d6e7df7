import { Context, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import pLimit from 'p-limit';
import { allowedLocation, openStore } from '../../store';
import { parseAlpaca, type AlpacaRow } from '../datasets/parse';
import { readUserFile } from '../datasets/read-user-file';
import type { ActivityDeps } from '../deps';
import { InvalidDataError } from '../../common/failures';
import { hashInputs, sha256 } from '../artifacts/hashing';
import { toJsonl } from '../artifacts/jsonl';
import { jsonlPart, rowsPerPart } from '../artifacts/parts';
import { scoreKeys } from '../artifacts/run-keys';
import { runStep } from '../artifacts/step';
import { complete, endpointFor, scorerModel, type LlmEndpoint, type ModelSource } from '../llm/llm-client';
import { fileScorer } from './file-scores';
import { OFFLINE_SCORER_LABEL, offlineHeuristicScore } from './offline-heuristic-scorer';
import { parseScore } from './parse-score';
import { storedScoreRow } from './score-rows';
import { buildScoreMessages, SCORE_PROMPT_SHA256, SCORE_PROMPT_TEMPLATE } from './score-prompt';
import type { ScoreInput, ScoreResult } from '../types';

/** One line of scores.jsonl: keyed by example id, with who scored it and with which prompt. */
export interface ScoreRow {
  id: string;
  score: number | null;
  scorer: string;
  promptSha256: string;
  /** The judge's raw answer when it could not be parsed (never replaced by a made-up score). */
  raw?: string;
  error?: string;
}

type Scorer = { label: string; offline: boolean; score: (row: AlpacaRow) => Promise<ScoreRow> };

function makeScorer(input: ScoreInput, deps: ActivityDeps): Scorer {
  const kind = input.scorer.kind;
  if (kind === 'file') throw new Error('file scores are read by fileScorer');
  const endpoint = endpointFor(kind, 'input.scorer.kind', deps.env, {
    maxRetries: input.scorer.requestRetries,
    timeoutSeconds: input.scorer.timeoutSeconds,
  });
  if (!endpoint) {
    return {
      label: OFFLINE_SCORER_LABEL,
      offline: true,
      score: async (row) => ({
        id: row.id,
        score: offlineHeuristicScore(row),
        scorer: OFFLINE_SCORER_LABEL,
        promptSha256: SCORE_PROMPT_SHA256,
      }),
    };
  }
  const source = scorerModel(deps.env, input.scorer.model);
  return {
    label: source.model,
    offline: false,
    score: (row) => askScore(endpoint, source, row, input.scorer.parseRetries),
  };
}

async function askScore(
  endpoint: LlmEndpoint,
  { model, setting }: ModelSource,
  row: AlpacaRow,
  parseRetries: number,
): Promise<ScoreRow> {
  let raw = '';
  let reason = '';
  for (let attempt = 0; attempt <= parseRetries; attempt++) {
    // Transport faults (429, 5xx, timeouts, outages) are waited out inside `complete`; what returns is an answer.
    const reply = await complete(
      endpoint,
      { model, messages: buildScoreMessages(row.instruction, row.input), temperature: 0, n: 1, max_tokens: 8 },
      setting,
    );
    if ('rejected' in reply) {
      return {
        id: row.id,
        score: null,
        scorer: model,
        promptSha256: SCORE_PROMPT_SHA256,
        error: `request rejected: ${reply.rejected}`,
      };
    }
    raw = reply.content;
    const parsed = parseScore(raw);
    if (parsed.ok) return { id: row.id, score: parsed.score, scorer: model, promptSha256: SCORE_PROMPT_SHA256 };
    reason = parsed.reason;
  }
  return {
    id: row.id,
    score: null,
    scorer: model,
    promptSha256: SCORE_PROMPT_SHA256,
    raw,
    error: `unparseable answer: ${reason}`,
  };
}

/**
 * Scores every instruction's difficulty on the paper's 1-5 scale. Rows are scored in parts that are committed one by
 * one; answers that stay unparseable are recorded as such and counted, never replaced.
 */
export async function scoreDifficulty(deps: ActivityDeps, input: ScoreInput): Promise<ScoreResult> {
  const ctx = Context.current();
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const keys = scoreKeys(input.runId);
  const { text, source } = await readUserFile(deps, input.dataset, 'input.dataset');
  if (input.datasetFormat === 'alpaca-json' && !text.trimStart().startsWith('[')) {
    throw new InvalidDataError(`${source}: datasetFormat is "alpaca-json" but the file is not a JSON array`, {
      file: source,
      field: 'input.datasetFormat',
    });
  }
  // Every row is checked before a single request is sent.
  const rows = parseAlpaca(text, source, { maxRowBytes: input.maxRowBytes });
  const scorer =
    input.scorer.kind === 'file'
      ? await fileScorer(deps, input, { sha256: sha256(text), source })
      : makeScorer(input, deps);
  const inputsHash = hashInputs({
    dataset: sha256(text),
    scorer: scorer.label,
    prompt: SCORE_PROMPT_SHA256,
    parseRetries: input.scorer.parseRetries,
  });
  const progress = { scored: 0, total: rows.length };
  return runStep(
    store,
    { runId: input.runId, step: 'score', key: keys.manifest, inputsHash },
    async (out) => {
      const datasetJsonl = toJsonl(
        rows.map(({ id, instruction, input: inp, output }) => ({ id, instruction, input: inp, output })),
      );
      await out.put(keys.dataset, datasetJsonl);
      await out.put(keys.prompt, SCORE_PROMPT_TEMPLATE);

      const limit = pLimit(input.scorer.concurrency);
      const partKey = (i: number) => keys.part(inputsHash, i);
      // Rows per committed part: a retried activity rescores only the parts that were not committed.
      const PART_ROWS = await rowsPerPart(out, partKey(0), rows.length);
      const parts = Math.ceil(rows.length / PART_ROWS);
      const all: ScoreRow[] = [];
      for (let i = 0; i < parts; i++) {
        const chunk = rows.slice(i * PART_ROWS, (i + 1) * PART_ROWS);
        // Parts only spare a retry work: scores.jsonl holds every row, so they are not outputs of the step.
        const part = { rows: chunk.length, output: false };
        const scored = await jsonlPart(out, partKey(i), part, () =>
          Promise.all(
            chunk.map((row) =>
              limit(async () => {
                const s = await scorer.score(row);
                // Heartbeats are throttled by the SDK; one per answer keeps slow endpoints inside the heartbeat timeout.
                progress.scored += 1;
                ctx.heartbeat(progress);
                return s;
              }),
            ),
          ),
        );
        all.push(...scored);
        progress.scored = all.length;
      }

      const failed = all.filter((r) => r.score === null);
      if (failed.length > input.scorer.maxFailedFraction * rows.length) {
        // Drop the parts holding failures so that a resumed run asks again for just those rows.
        for (let i = 0; i < parts; i++) {
          if (all.slice(i * PART_ROWS, (i + 1) * PART_ROWS).some((r) => r.score === null))
            await store.delete(partKey(i));
        }
        throw ApplicationFailure.nonRetryable(
          `${failed.length} of ${rows.length} difficulty answers could not be parsed (limit ${input.scorer.maxFailedFraction * 100}%); ` +
            `e.g. row ${failed[0].id}: ${JSON.stringify(failed[0].raw)}`,
          'UnparseableScores',
          { failed: failed.length, rows: rows.length },
        );
      }
      if (failed.length)
        log.warn('some difficulty answers were unparseable; those rows are left out of every stage', {
          failed: failed.length,
        });

      const histogram: Record<string, number> = {};
      for (const r of all) {
        const bucket = r.score === null ? 'failed' : String(Math.min(5, Math.floor(r.score)));
        histogram[bucket] = (histogram[bucket] ?? 0) + 1;
      }
      const scores = await out.put(keys.scores, toJsonl(all.map(storedScoreRow)));
      const result: ScoreResult = {
        datasetUri: store.uriFor(keys.dataset),
        scoresUri: store.uriFor(keys.scores),
        rows: rows.length,
        scored: rows.length - failed.length,
        failed: failed.length,
        scorer: scorer.label,
        offline: scorer.offline,
        promptSha256: SCORE_PROMPT_SHA256,
        histogram,
        sha256: scores.sha256,
      };
      return result;
    },
    { heartbeat: () => progress },
  );
}
