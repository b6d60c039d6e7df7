import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { allowedLocation, openStore } from '../../store';
import { receiveFile } from '../artifacts/hand-off';
import type { ActivityDeps } from '../deps';
import { InvalidDataError } from '../../common/failures';
import { hashInputs } from '../artifacts/hashing';
import { fullCollection, ROWS_PER_COLLECTION } from '../full-collection';
import type { OutputEntry } from '../artifacts/manifest';
import { segmentKeys } from '../artifacts/run-keys';
import { runStep, type StepOutputs } from '../artifacts/step';
import type { ScoreRow } from '../score/score-difficulty';
import type { SegmentInput, SegmentResult, StageSplit } from '../types';
import { copyLines, lineCapacity, LineCursor, LinePlaces, LineReader, LineWriter, yieldToLoop } from './row-file';
import { KeyPrefixes, keyPrefix, prefixOfHex, seededKey } from './seeded-keys';

/** A fixed-seed shuffle that does not depend on row order or on any RNG implementation: sort by a keyed hash. */
export const seededOrder = <T extends { id: string }>(rows: T[], salt: string): T[] =>
  rows
    .map((r) => ({ r, k: seededKey(salt, r.id) }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
    .map(({ r }) => r);

/** Cut points that put about the same number of rows in each stage; equal scores always share a stage. */
export function quantileThresholds(scores: ArrayLike<number>, count: number): number[] {
  const sorted = Float64Array.from(scores).sort();
  return Array.from({ length: count - 1 }, (_, k) => sorted[Math.floor(((k + 1) * sorted.length) / count)]);
}

/** Stage k (1-based) holds thresholds[k-2] <= score < thresholds[k-1]: the paper's "stage 3 = score >= 3.5". */
export const stageOf = (score: number, thresholds: number[]): number => 1 + thresholds.filter((t) => score >= t).length;

/**
 * Splits the scored rows into stages of increasing difficulty, shuffles each stage once with a fixed seed (the paper
 * does not reshuffle per epoch), and writes the One-off baseline's data: every staged row, shuffled.
 *
 * Memory stays a few numbers per row whatever the dataset's size: the dataset and its scores are copied to local
 * disk and read line by line, each row is kept as (byte offset, length, score), seeded orders are sorted on 4-byte key
 * prefixes, and the stage files are written by copying each row's line from its offset.
 */
export async function segmentStages(deps: ActivityDeps, input: SegmentInput): Promise<SegmentResult> {
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const inputsHash = hashInputs({
    scores: input.score.sha256,
    stages: input.stages,
    heldout: [input.heldoutFraction, input.heldoutMax],
  });
  const spec = { runId: input.runId, step: 'segment', key: segmentKeys(input.runId).manifest, inputsHash };
  return runStep(store, spec, async (out) => {
    await mkdir(deps.workDir, { recursive: true });
    const dir = await mkdtemp(join(deps.workDir, 'segment-'));
    try {
      return await segment(deps, input, out, dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

/** A phase's typed arrays, let go, wait outside the heap for a collection: one is forced after a large phase. */
const collectAfter = (rows: number) => rows >= ROWS_PER_COLLECTION && fullCollection();

/** The fields of a score line segmentation reads; every format of scores.jsonl has them. */
type ScoreLine = Pick<ScoreRow, 'id' | 'score'>;

/**
 * A row's id. dataset.jsonl is written by JSON.stringify with `id` first, so the id is read straight from the line
 * when it has no escapes; any other line is parsed whole.
 */
function parseId(text: string): string {
  if (text.startsWith(ID_PREFIX)) {
    const end = text.indexOf('"', ID_PREFIX.length);
    const id = text.slice(ID_PREFIX.length, end);
    if (end !== -1 && !id.includes('\\') && text[end + 1] === ',') return id;
  }
  return (JSON.parse(text) as { id: string }).id;
}
const ID_PREFIX = '{"id":"';
const scoreValue = (s: ScoreLine | undefined) => (typeof s?.score === 'number' ? s.score : NaN);

/** Every dataset row's place in the local copy and its score (NaN: none), plus the held-out candidates. */
interface Indexed {
  refs: LinePlaces;
  scores: Float64Array;
  heldout: LowestKeys;
}

/**
 * The rows with the lowest seeded keys seen so far, at most `cap` of them: the head of seededOrder over every row,
 * without keeping every row's key. Keys are compared on their first 8 bytes first; only a row that would enter the
 * head gets its full key.
 */
class LowestKeys {
  private items: Array<{ key: string; pos: number; id: string }> = [];
  /** The first 8 bytes of the largest key kept once the head is full: a row above it cannot enter. */
  private bound: number = Infinity;

  constructor(
    private readonly salt: string,
    private readonly cap: number,
  ) {}

  offer(id: string, pos: number): void {
    if (this.cap === 0) return;
    if (keyPrefix(this.salt, id) > this.bound) return;
    this.items.push({ key: seededKey(this.salt, id), pos, id });
    if (this.items.length >= 2 * this.cap + 1024) this.trim();
  }

  private trim(): void {
    this.items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.pos - b.pos));
    this.items.length = Math.min(this.items.length, this.cap);
    if (this.cap > 0 && this.items.length === this.cap) this.bound = prefixOfHex(this.items[this.cap - 1].key);
  }

  head(n: number): Array<{ pos: number; id: string }> {
    this.trim();
    return this.items.slice(0, n);
  }
}

/**
 * Reads the dataset and its scores side by side: scores.jsonl lists the dataset's rows in order, so no map of ids is
 * needed. Without `byId`, undefined when the scores are in another order (or a row was scored twice: the later line
 * wins): the caller reads them into a map and calls again.
 */
async function indexRows(
  datasetPath: string,
  scoresPath: string,
  input: SegmentInput,
  byId?: Map<string, number | null>,
): Promise<Indexed | undefined> {
  // Sized once from the number of line breaks: no growing copies (each a peak of twice the column).
  const capacity = await lineCapacity(datasetPath);
  const refs = new LinePlaces((await stat(datasetPath)).size, capacity);
  const scores = new Float64Array(capacity);
  let n = 0;
  const heldout = new LowestKeys(`${input.stages.seed}:heldout`, input.heldoutFraction > 0 ? input.heldoutMax : 0);
  const rows = new LineCursor(datasetPath);
  const inOrder = byId ? undefined : new LineCursor(scoresPath);
  try {
    for (let line = rows.next(); line; line = rows.next()) {
      const id = parseId(line.text);
      let score: ScoreLine | undefined;
      if (inOrder) {
        const next = inOrder.next();
        score = next && readScore(next.text);
        if (score?.id !== id) return undefined;
      } else {
        score = { id, score: byId!.get(id) ?? null };
      }
      const pos = n++;
      refs.add(line);
      scores[pos] = scoreValue(score);
      heldout.offer(id, pos);
      if ((pos & 0x3fff) === 0) await yieldToLoop();
    }
    if (inOrder?.next()) return undefined;
  } finally {
    rows.close();
    inOrder?.close();
  }
  return {
    refs,
    scores: scores.subarray(0, n),
    heldout,
  };
}

/**
 * A score line's id and score. The score step writes scores.jsonl with JSON.stringify, `id` then `score` first
 * (storedScoreRow), so both are sliced from the line when the id has no escapes and the score is a plain number or
 * null; any other line (another writer's spacing or key order) is parsed whole. Not JSON.parse for every line: it
 * keeps each short string value (ids such as `b123456`) in V8's string table, tens of MB at a million rows that only
 * a full collection gives back.
 */
export function readScore(text: string): ScoreLine {
  if (text.startsWith(ID_PREFIX)) {
    const end = text.indexOf('"', ID_PREFIX.length);
    if (end !== -1 && text.startsWith(SCORE_KEY, end)) {
      const id = text.slice(ID_PREFIX.length, end);
      const from = end + SCORE_KEY.length;
      let to = from;
      while (to < text.length && text[to] !== ',' && text[to] !== '}') to++;
      const value = text.slice(from, to);
      if (to < text.length && !id.includes('\\')) {
        if (value === 'null') return { id, score: null };
        if (JSON_NUMBER.test(value)) return { id, score: Number(value) };
      }
    }
  }
  return JSON.parse(text) as ScoreLine;
}
const SCORE_KEY = '","score":';
/** A number as JSON writes it: Number() reads it to the same double JSON.parse does. */
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

async function readScoreMap(scoresPath: string): Promise<Map<string, number | null>> {
  const map = new Map<string, number | null>();
  const cursor = new LineCursor(scoresPath);
  try {
    let n = 0;
    for (let line = cursor.next(); line; line = cursor.next()) {
      const s = readScore(line.text);
      map.set(s.id, s.score);
      if ((++n & 0x3fff) === 0) await yieldToLoop();
    }
  } finally {
    cursor.close();
  }
  return map;
}

type Refs = Indexed['refs'];

/** Writes the rows at `positions`, in that order, as one output: each row's line copied from the local dataset. */
async function writeRows(
  out: StepOutputs,
  key: string,
  positions: ArrayLike<number>,
  refs: Refs,
  reader: LineReader,
  path: string,
): Promise<OutputEntry> {
  const writer = await LineWriter.create(path);
  try {
    await copyLines(
      reader,
      positions.length,
      (i) => refs.offset(positions[i]),
      (i) => refs.length(positions[i]),
      writer,
    );
  } finally {
    await writer.close();
  }
  const entry = await out.putFile(key, path);
  await rm(path, { force: true });
  // Each output's orders and copy buffers are a few bytes a row: let them go before the next output's.
  collectAfter(positions.length);
  return entry;
}

/** Key prefixes of the rows at `positions` (ascending), one pass over the local dataset: slot i is positions[i]. */
async function keyPrefixes(path: string, positions: Uint32Array, saltOf: (slot: number) => string) {
  const prefixes = new KeyPrefixes(positions.length);
  const cursor = new LineCursor(path);
  try {
    let slot = 0;
    for (let pos = 0, line = cursor.next(); line && slot < positions.length; pos++, line = cursor.next()) {
      if (pos !== positions[slot]) continue;
      prefixes.set(slot, saltOf(slot), parseId(line.text));
      if ((++slot & 0x3fff) === 0) await yieldToLoop();
    }
  } finally {
    cursor.close();
  }
  return prefixes;
}

/**
 * The held-out split and the scored training rows ("slots": their positions and scores). The score of every row is
 * not kept past this point: only the scored training rows' are.
 */
function trainingRows({ refs, scores, heldout: lowest }: Indexed, input: SegmentInput) {
  const heldoutN = Math.min(input.heldoutMax, Math.floor(scores.length * input.heldoutFraction));
  const heldout = lowest.head(heldoutN);
  // Held-out rows are not training rows (ids are unique in dataset.jsonl: the score step checked them).
  for (const h of heldout) scores[h.pos] = NaN;
  let scoredCount = 0;
  for (let p = 0; p < scores.length; p++) if (!Number.isNaN(scores[p])) scoredCount++;
  const scoredPos = new Uint32Array(scoredCount);
  // Compacted in place (a slot is never after its position): no second column of scores.
  for (let p = 0, slot = 0; p < scores.length; p++) {
    if (Number.isNaN(scores[p])) continue;
    scoredPos[slot] = p;
    scores[slot++] = scores[p];
  }
  const slotScores = scores.subarray(0, scoredCount);
  const unscored = scores.length - heldout.length - scoredCount;
  return { refs, heldout, scoredPos, slotScores, unscored };
}

async function segment(deps: ActivityDeps, input: SegmentInput, out: StepOutputs, dir: string): Promise<SegmentResult> {
  const { store } = out;
  const keys = segmentKeys(input.runId);
  // Local copies, streamed: the dataset and its scores are the largest files a run keeps.
  const datasetPath = join(dir, 'dataset.jsonl');
  const scoresPath = join(dir, 'scores.jsonl');
  await receiveFile(input.score.datasetUri, deps.env, datasetPath, { setting: 'input.score.datasetUri' });
  // Lines are read by slicing their heads (readScore), which would not notice a line damaged after its score.
  const scoresSetting = 'input.score.scoresUri';
  await receiveFile(input.score.scoresUri, deps.env, scoresPath, {
    sha256: input.score.sha256,
    setting: scoresSetting,
  });
  const { count, seed } = input.stages;
  const training = trainingRows(
    (await indexRows(datasetPath, scoresPath, input)) ??
      (await indexRows(datasetPath, scoresPath, input, await readScoreMap(scoresPath)))!,
    input,
  );
  const { refs, heldout, scoredPos, unscored } = training;
  await rm(scoresPath);
  const scoredCount = scoredPos.length;
  collectAfter(scoredCount);
  if (scoredCount === 0) throw new InvalidDataError('no scored training rows to segment', { field: 'dataset' });
  const scoreOf = (slot: number) => training.slotScores[slot];

  const reader = new LineReader(datasetPath);
  try {
    const idOf = (slot: number) => parseId(reader.text(refs.at(scoredPos[slot])));

    const rule = input.stages.rule;
    const thresholds =
      rule === 'quantiles'
        ? quantileThresholds(
            Float64Array.from({ length: scoredCount }, (_, slot) => scoreOf(slot)),
            count,
          )
        : rule === 'random'
          ? []
          : input.stages.thresholds;
    // Each slot's stage; a stage's rows are listed (slots, ascending) only when it is written. The order they are
    // given in does not matter: ids are unique, so no two rows share a full key.
    let stageOfSlot = new Uint8Array(scoredCount);
    if (rule === 'random') {
      // The paper's control: stages of randomly mixed difficulty, equal in size, trained the same way.
      const salt = `${seed}:random-stages`;
      const prefixes = await keyPrefixes(datasetPath, scoredPos, () => salt);
      const order = prefixes.order(undefined, (slot) => seededKey(salt, idOf(slot)), { last: true });
      for (let i = 0; i < scoredCount; i++) stageOfSlot[order[i]] = 1 + Math.floor((i * count) / scoredCount);
    } else {
      for (let slot = 0; slot < scoredCount; slot++) stageOfSlot[slot] = stageOf(scoreOf(slot), thresholds);
    }
    const membersOf = (k: number): Uint32Array => {
      let size = 0;
      for (let slot = 0; slot < scoredCount; slot++) if (stageOfSlot[slot] === k) size++;
      const slots = new Uint32Array(size);
      for (let slot = 0, i = 0; slot < scoredCount; slot++) if (stageOfSlot[slot] === k) slots[i++] = slot;
      return slots;
    };
    // Each stage's score range, taken now: the scores are let go before the stages are ordered and written.
    const lowest = new Float64Array(count + 1).fill(Infinity);
    const highest = new Float64Array(count + 1).fill(-Infinity);
    for (let slot = 0; slot < scoredCount; slot++) {
      const k = stageOfSlot[slot];
      lowest[k] = Math.min(lowest[k], scoreOf(slot));
      highest[k] = Math.max(highest[k], scoreOf(slot));
    }
    training.slotScores = new Float64Array(0);
    collectAfter(scoredCount);

    const stageSalt = (k: number) => `${seed}:stage-${k}`;
    // Let go once the stages are written, before the one-off order is made.
    let stagePrefixes: KeyPrefixes | undefined = await keyPrefixes(datasetPath, scoredPos, (slot) =>
      stageSalt(stageOfSlot[slot]),
    );
    const stages: StageSplit[] = [];
    /** The rows' positions in place of their slots (the array is the caller's own). */
    const positionsOf = (slots: Uint32Array) => {
      for (let i = 0; i < slots.length; i++) slots[i] = scoredPos[slots[i]];
      return slots;
    };
    const scratch = join(dir, 'out.jsonl');
    for (let k = 1; k <= count; k++) {
      const stageSlots = stagePrefixes.order(membersOf(k), (slot) => seededKey(stageSalt(k), idOf(slot)));
      if (stageSlots.length === 0 && !input.stages.allowEmpty) {
        const lo = k === 1 ? '-inf' : thresholds[k - 2];
        const hi = k === count ? '+inf' : thresholds[k - 1];
        throw new InvalidDataError(
          `stage ${k} of ${count} is empty: no row scored in [${lo}, ${hi}) (thresholds ${JSON.stringify(thresholds)}). ` +
            'Change input.stages.thresholds, use input.stages.rule "quantiles", or set input.stages.allowEmpty',
          { field: 'input.stages' },
        );
      }
      const [minScore, maxScore] = stageSlots.length ? [lowest[k], highest[k]] : [null, null];
      const key = keys.stage(k);
      const entry = await writeRows(out, key, positionsOf(stageSlots), refs, reader, scratch);
      stages.push({
        stage: k,
        uri: store.uriFor(key),
        rows: stageSlots.length,
        minScore,
        maxScore,
        sha256: entry.sha256,
      });
    }

    // The one-off order needs no stages: a million rows' worth less while it is made.
    stagePrefixes = undefined;
    stageOfSlot = new Uint8Array(0);
    collectAfter(scoredCount);
    const oneOffSalt = `${seed}:one-off`;
    const oneOffPrefixes = await keyPrefixes(datasetPath, scoredPos, () => oneOffSalt);
    const oneOffSlots = oneOffPrefixes.order(undefined, (slot) => seededKey(oneOffSalt, idOf(slot)), { last: true });
    const oneOff = await writeRows(out, keys.oneOff, positionsOf(oneOffSlots), refs, reader, scratch);
    let heldoutRef: SegmentResult['heldout'];
    if (heldout.length) {
      const positions = heldout.map((h) => h.pos);
      await writeRows(out, keys.heldout, positions, refs, reader, scratch);
      heldoutRef = { uri: store.uriFor(keys.heldout), rows: heldout.length };
    }

    const result: SegmentResult = {
      stages,
      oneOff: { uri: store.uriFor(keys.oneOff), rows: oneOffSlots.length, sha256: oneOff.sha256 },
      heldout: heldoutRef,
      thresholds,
      unscored,
      summaryUri: store.uriFor(keys.summary),
    };
    const summary = {
      rule: input.stages.rule,
      thresholds,
      stages: stages.map(({ stage, rows: n, minScore, maxScore }) => ({ stage, rows: n, minScore, maxScore })),
      oneOff: oneOffSlots.length,
      heldout: heldout.length,
      unscored,
    };
    await out.put(keys.summary, JSON.stringify(summary, null, 2));
    return result;
  } finally {
    reader.close();
  }
}
