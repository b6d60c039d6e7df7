import { allowedLocation, openObject, openStore } from '../../store';
import type { ActivityDeps } from '../deps';
import { hashInputs } from '../artifacts/hashing';
import { streamJsonlChunks } from '../artifacts/jsonl';
import { IdTable } from '../datasets/id-table';
import { scoreCompareKeys } from '../artifacts/run-keys';
import { runStep } from '../artifacts/step';
import { isOpenScale, scoreHistogram } from '../results/histogram';
import { spearman } from './spearman';
import type { ScoreAgreement, ScoreResult, StepRef } from '../types';

type Scored = Pick<ScoreResult, 'scoresUri' | 'scorer' | 'sha256'>;

export interface ScoreAgreementInput extends StepRef {
  /** The scores the stages are cut from. */
  primary: Scored;
  /** `scorer.compareWith`'s scores of the same rows. */
  secondary: Scored;
}

type ScoreLine = { id: string | number; score: number | null };

/**
 * Each file's scores in its own order, and the pairs of rows both scored, in the primary file's order. Scores are kept
 * as they are read, NaN for a row without a score (JSON has no NaN, so none is ever a real score): arrays of doubles
 * only, which V8 keeps as 8 bytes a row.
 */
class Paired {
  readonly primary: number[] = [];
  readonly secondary: number[] = [];
  readonly x: number[] = [];
  readonly y: number[] = [];
}

/** A column's scores with null for none, iterable again and again, as scoreHistogram needs for an open scale. */
const withNulls = (column: number[]): Iterable<number | null> => ({
  *[Symbol.iterator]() {
    for (const v of column) yield Number.isNaN(v) ? null : v;
  },
});

/**
 * The rows of the two score files paired by id, in the primary file's order (the two files need not share an order
 * nor all their rows): the secondary's ids are kept in an IdTable (their bytes and 20 bytes each) pointing at their
 * scores, which is what a Map of id to score gave, the last score of an id given twice in its first place.
 */
async function paired(primaryUri: string, secondaryUri: string, env: NodeJS.ProcessEnv): Promise<Paired> {
  const lines = (uri: string) => {
    const { store, key } = openObject(uri, env);
    return streamJsonlChunks<ScoreLine>(store, key);
  };
  const paired = new Paired();
  const ids = new IdTable();
  for await (const rows of lines(secondaryUri)) {
    for (const s of rows) {
      const first = ids.firstLine(String(s.id), paired.secondary.length);
      if (first === undefined) paired.secondary.push(s.score ?? NaN);
      else paired.secondary[first] = s.score ?? NaN;
    }
  }
  for await (const rows of lines(primaryUri)) {
    for (const p of rows) {
      paired.primary.push(p.score ?? NaN);
      const at = ids.lineOf(String(p.id));
      const other = at === undefined ? NaN : paired.secondary[at];
      if (p.score === null || Number.isNaN(other)) continue;
      paired.x.push(p.score);
      paired.y.push(other);
    }
  }
  return paired;
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
      const { primary, secondary, x, y } = await paired(input.primary.scoresUri, input.secondary.scoresUri, deps.env);
      const agreement: ScoreAgreement = {
        spearman: spearman(x, y),
        rows: x.length,
        primary: {
          scorer: input.primary.scorer,
          histogram: scoreHistogram(withNulls(primary), isOpenScale(input.primary.scorer)),
        },
        secondary: {
          scorer: input.secondary.scorer,
          histogram: scoreHistogram(withNulls(secondary), isOpenScale(input.secondary.scorer)),
          scoresUri: input.secondary.scoresUri,
        },
      };
      await out.put(keys.result, `${JSON.stringify(agreement, null, 2)}\n`);
      return agreement;
    },
  );
}
