import { allowedLocation, openObject, openStore } from '../../store';
import type { ActivityDeps } from '../deps';
import { hashInputs } from '../artifacts/hashing';
import { JsonlCursor, streamJsonlChunks } from '../artifacts/jsonl';
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
 * Scores kept as they are read, NaN for a row without a score (JSON has no NaN, so none is ever a real score): an
 * array of doubles only, which V8 keeps as 8 bytes a row.
 */
type ScoreColumn = number[];

/** A column's scores with null for none, iterable again and again, as scoreHistogram needs for an open scale. */
const withNulls = (column: ScoreColumn): Iterable<number | null> => ({
  *[Symbol.iterator]() {
    for (const v of column) yield Number.isNaN(v) ? null : v;
  },
});

/** Each file's scores in its own order, and the pairs of rows both scored, in the primary file's order. */
interface Paired {
  primary: ScoreColumn;
  secondary: ScoreColumn;
  x: ScoreColumn;
  y: ScoreColumn;
}

function pairUp(paired: Paired, score: number | null, other: number | null | undefined): void {
  if (score === null || other === null || other === undefined || Number.isNaN(other)) return;
  paired.x.push(score);
  paired.y.push(other);
}

function cursor(uri: string, env: NodeJS.ProcessEnv): JsonlCursor<ScoreLine> {
  const { store, key } = openObject(uri, env);
  return new JsonlCursor<ScoreLine>(store, key);
}

/** A score file's lines, a chunk at a time. */
function chunks(uri: string, env: NodeJS.ProcessEnv): AsyncGenerator<ScoreLine[]> {
  const { store, key } = openObject(uri, env);
  return streamJsonlChunks<ScoreLine>(store, key);
}

const newPaired = (): Paired => ({ primary: [], secondary: [], x: [], y: [] });

/**
 * Both files read side by side, which is how two score steps over one dataset write them (in dataset order, each id
 * once); undefined as soon as a line's ids differ or one file ends first.
 */
async function pairedInOrder(primaryUri: string, secondaryUri: string, env: NodeJS.ProcessEnv) {
  const primary = cursor(primaryUri, env);
  const secondary = cursor(secondaryUri, env);
  const paired = newPaired();
  try {
    for (;;) {
      const p = await primary.next();
      const s = await secondary.next();
      if (p === undefined || s === undefined) return p === s ? paired : undefined;
      if (String(p.id) !== String(s.id)) return undefined;
      paired.primary.push(p.score ?? NaN);
      paired.secondary.push(s.score ?? NaN);
      pairUp(paired, p.score, s.score);
    }
  } finally {
    await Promise.all([primary.close(), secondary.close()]);
  }
}

/**
 * Files in different orders: the secondary's ids are kept in an IdTable (their bytes and 20 bytes each) pointing at
 * their scores, which is what a Map of id to score gave, the last score of an id given twice in its first place.
 */
async function pairedById(primaryUri: string, secondaryUri: string, env: NodeJS.ProcessEnv): Promise<Paired> {
  const paired = newPaired();
  const ids = new IdTable();
  for await (const rows of chunks(secondaryUri, env)) {
    for (const s of rows) {
      const first = ids.firstLine(String(s.id), paired.secondary.length);
      if (first === undefined) paired.secondary.push(s.score ?? NaN);
      else paired.secondary[first] = s.score ?? NaN;
    }
  }
  for await (const rows of chunks(primaryUri, env)) {
    for (const p of rows) {
      paired.primary.push(p.score ?? NaN);
      const at = ids.lineOf(String(p.id));
      pairUp(paired, p.score, at === undefined ? undefined : paired.secondary[at]);
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
      const paired =
        (await pairedInOrder(input.primary.scoresUri, input.secondary.scoresUri, deps.env)) ??
        (await pairedById(input.primary.scoresUri, input.secondary.scoresUri, deps.env));
      const agreement: ScoreAgreement = {
        spearman: spearman(paired.x, paired.y),
        rows: paired.x.length,
        primary: {
          scorer: input.primary.scorer,
          histogram: scoreHistogram(withNulls(paired.primary), isOpenScale(input.primary.scorer)),
        },
        secondary: {
          scorer: input.secondary.scorer,
          histogram: scoreHistogram(withNulls(paired.secondary), isOpenScale(input.secondary.scorer)),
          scoresUri: input.secondary.scoresUri,
        },
      };
      await out.put(keys.result, `${JSON.stringify(agreement, null, 2)}\n`);
      return agreement;
    },
  );
}
