import { allowedLocation, openObject, openStore } from '../../store';
import type { ActivityDeps } from '../deps';
import { hashInputs } from '../artifacts/hashing';
import { streamJsonl } from '../artifacts/jsonl';
import { scoreCompareKeys } from '../artifacts/run-keys';
import { runStep } from '../artifacts/step';
import { isOpenScale, scoreHistogram } from './histogram';
import { spearman } from './spearman';
import type { ScoreAgreement, ScoreResult, StepRef } from '../types';

type Scored = Pick<ScoreResult, 'scoresUri' | 'scorer' | 'sha256'>;

export interface ScoreAgreementInput extends StepRef {
  /** The scores the stages are cut from. */
  primary: Scored;
  /** `scorer.compareWith`'s scores of the same rows. */
  secondary: Scored;
}

async function readScores(uri: string, env: NodeJS.ProcessEnv): Promise<Array<{ id: string; score: number | null }>> {
  const { store, key } = openObject(uri, env);
  const rows: Array<{ id: string; score: number | null }> = [];
  for await (const r of streamJsonl<{ id: string; score: number | null }>(store, key))
    rows.push({ id: String(r.id), score: r.score });
  return rows;
}

/**
 * How two scorers of the same rows agree: Spearman's rank correlation over the rows both scored (ties ranked by their
 * mean rank), and each scorer's histogram on its own scale. Written to score/agreement/ for the report; the numbers
 * are small enough for workflow history.
 */
export async function scoreAgreement(deps: ActivityDeps, input: ScoreAgreementInput): Promise<ScoreAgreement> {
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const keys = scoreCompareKeys(input.runId).agreement;
  const inputsHash = hashInputs({ primary: input.primary.sha256, secondary: input.secondary.sha256 });
  return runStep(
    store,
    { runId: input.runId, step: 'score/agreement', key: keys.manifest, inputsHash },
    async (out) => {
      const primary = await readScores(input.primary.scoresUri, deps.env);
      const secondary = new Map((await readScores(input.secondary.scoresUri, deps.env)).map((r) => [r.id, r.score]));
      const x: number[] = [];
      const y: number[] = [];
      for (const { id, score } of primary) {
        const other = secondary.get(id);
        if (score === null || other === null || other === undefined) continue;
        x.push(score);
        y.push(other);
      }
      const agreement: ScoreAgreement = {
        spearman: spearman(x, y),
        rows: x.length,
        primary: {
          scorer: input.primary.scorer,
          histogram: scoreHistogram(
            primary.map((r) => r.score),
            isOpenScale(input.primary.scorer),
          ),
        },
        secondary: {
          scorer: input.secondary.scorer,
          histogram: scoreHistogram([...secondary.values()], isOpenScale(input.secondary.scorer)),
          scoresUri: input.secondary.scoresUri,
        },
      };
      await out.put(keys.result, `${JSON.stringify(agreement, null, 2)}\n`);
      return agreement;
    },
  );
}
