import { Context } from '@temporalio/activity';
import ms, { type StringValue } from 'ms';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { allowedLocation, openStore } from '../../store';
import { InvalidDataError } from '../../common/failures';
import { storedRow } from '../datasets/rows';
import type { ActivityDeps } from '../deps';
import { scoreResult, scoredDataset } from './score-answers';
import { hashInputs } from '../artifacts/hashing';
import { fromJsonl, toJsonl } from '../artifacts/jsonl';
import { scoreCompareKeys, scoreKeys } from '../artifacts/run-keys';
import { inScratch } from '../artifacts/scratch';
import { runStep } from '../artifacts/step';
import { localModel } from '../artifacts/hand-off';
import { cachedByTrainer } from '../python/model-ref';
import { checkModel } from '../python/check-model';
import { runTrainerProcess } from '../python/trainer-process';
import { scoreHistogram } from '../results/histogram';
import type { IfdScoreInput, ScoreResult } from '../types';

/** One line of an IFD scores.jsonl, as `python -m pift.ifd` writes it; segmentation reads `id` and `score`. */
export interface IfdScoreRow {
  id: string;
  /** loss_given_instruction / loss_alone; null where the answer alone has no finite, positive loss. */
  score: number | null;
  loss_given_instruction: number;
  loss_alone: number;
}

/**
 * Instruction-Following Difficulty (Li et al. 2023) of every row: the base model's loss on the answer given the
 * instruction divided by its loss on the answer alone (trainer/pift/ifd.py), one forward-pass pair per row on this
 * GPU worker. Like every score step it writes the run's dataset.jsonl and scores.jsonl and commits a manifest, so a
 * re-run returns at once; the scores are not on the 1-5 scale, so stages are cut by quantiles.
 */
export async function scoreIfd(deps: ActivityDeps, input: IfdScoreInput): Promise<ScoreResult> {
  const ctx = Context.current();
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const compare = input.output === 'compare';
  const keys = compare ? scoreCompareKeys(input.runId) : scoreKeys(input.runId);
  const dataset = scoredDataset(deps, input);
  const rows: Array<ReturnType<typeof storedRow>> = [];
  for await (const row of dataset) rows.push(storedRow(row));
  const { ifd } = input;
  // What IFD scores are called in results and the report: the method and the model that computed them.
  const label = `ifd:${ifd.model}`;
  const inputsHash = hashInputs({
    dataset: dataset.sha256,
    scorer: label,
    method: 'ifd-v1',
    maxLength: ifd.maxLength,
    modelSeed: ifd.modelSeed,
    ...(input.datasetColumns ? { columns: input.datasetColumns } : {}),
    ...(ifd.conversationTemplate !== undefined && { conversationTemplate: ifd.conversationTemplate }),
  });
  const step = compare ? 'score/compare' : 'score';
  let progress = { step, scored: 0, total: rows.length };
  return runStep(
    store,
    { runId: input.runId, step, key: keys.manifest, inputsHash },
    (out) =>
      inScratch(deps.workDir, 'score-ifd-', async (work) => {
        const field = 'input.training.baseModel';
        // A builtin or hub model is resolved into this worker's model cache by the check (it may download once).
        if (cachedByTrainer(ifd.model)) {
          await checkModel(deps, { runId: input.runId, model: ifd.model, maxLength: ifd.maxLength, field });
        }
        const modelDir = await localModel(deps, ifd.model, join(work, 'model'), field);
        const datasetJsonl = toJsonl(rows);
        await out.put(keys.dataset, datasetJsonl);
        const rowsFile = join(work, 'rows.jsonl');
        const outFile = join(work, 'ifd.jsonl');
        await writeFile(rowsFile, datasetJsonl);
        const configPath = join(work, 'ifd.json');
        await writeFile(
          configPath,
          JSON.stringify({
            model_name_or_path: modelDir,
            input_file: rowsFile,
            output_file: outFile,
            max_length: ifd.maxLength,
            model_seed: ifd.modelSeed,
            ...(ifd.batchSize !== undefined && { batch_size: ifd.batchSize }),
            ...(ifd.conversationTemplate !== undefined && { conversation_template: ifd.conversationTemplate }),
            parent_pid: process.pid,
          }),
        );
        await runTrainerProcess({
          python: deps.python,
          module: 'pift.ifd',
          configPath,
          cwd: work,
          env: deps.env,
          progressTimeoutMs: ms(ifd.progressTimeout as StringValue),
          heartbeat: () => ctx.heartbeat(progress),
          onEvent: (e) => {
            if (e.event === 'progress') progress = { ...progress, scored: e.done, total: e.total };
          },
        });
        const scored = fromJsonl<IfdScoreRow>(await readFile(outFile, 'utf8'));
        if (scored.length !== rows.length || scored.some((r, i) => String(r.id) !== rows[i].id)) {
          throw new Error(`pift.ifd wrote ${scored.length} scores for ${rows.length} rows, or not in their order`);
        }
        const failed = scored.filter((r) => r.score === null);
        if (failed.length > input.scorer.maxFailedFraction * rows.length) {
          throw new InvalidDataError(
            `${failed.length} of ${rows.length} rows have no IFD score (their answer alone has no positive loss; ` +
              `limit ${input.scorer.maxFailedFraction * 100}%): e.g. row ${failed[0].id}`,
            { field: 'input.scorer.maxFailedFraction' },
          );
        }
        // The trainer's own lines, ids as the run's dataset has them (strings).
        const { sha256 } = await out.put(keys.scores, toJsonl(scored.map((r, i) => ({ ...r, id: rows[i].id }))));
        const histogram = scoreHistogram(
          scored.map((r) => r.score),
          true,
        );
        const scorer = { scorer: label, offline: true, promptSha256: '' };
        return scoreResult(store, keys, { rows: rows.length, failed: failed.length, ...scorer, histogram, sha256 });
      }),
    { heartbeat: () => progress },
  );
}
