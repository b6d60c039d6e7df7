/**
 * Each training's recorded losses, read from its step's artifacts (manifest and losses.json): what the report charts
 * and what the convergence check reads.
 */
import { ONE_OFF } from '../../common/constants';
import type { LossRecord } from '../../common/convergence';
import type { ObjectStore } from '../../store';
import type { TrainResult } from '../types';
import { readJson, readManifest } from './manifest';
import { trainKeys } from './run-keys';

export interface TrainingCurve {
  name: string;
  steps: number;
  lossFirst: number | null;
  lossLast: number | null;
  /** Logged losses with the optimizer step of each. */
  points: Array<{ step: number; loss: number }>;
  /** True when the steps were reconstructed (the stored losses carry no steps). */
  stepsInferred: boolean;
}

/**
 * The optimizer step of each stored loss. The trainer logs every step and keeps every `stride`-th entry (at most 200),
 * the last replaced by the final step; stored losses written before their steps were kept follow that rule.
 */
export function lossSteps(count: number, steps: number): { steps: number[]; inferred: boolean } {
  const stride = Math.max(1, Math.ceil(steps / 200));
  const strided = Math.ceil(steps / stride) === count;
  // Else another logging interval: evenly spread over the run.
  const step = (i: number) =>
    strided ? (i === count - 1 ? steps : 1 + i * stride) : Math.round(((i + 1) * steps) / count);
  return { steps: Array.from({ length: count }, (_, i) => step(i)), inferred: true };
}

export async function trainingCurve(
  store: ObjectStore,
  runId: string,
  name: string,
): Promise<TrainingCurve | undefined> {
  const keys = trainKeys(runId, name);
  const manifest = await readManifest<TrainResult>(store, keys.manifest);
  if (!manifest) return undefined;
  const stored = await readJson<{ losses?: number[]; steps?: number[]; loss_steps?: number[] }>(store, keys.losses);
  const losses = stored?.losses ?? [];
  const given = stored?.steps ?? stored?.loss_steps;
  const { steps, inferred } =
    given && given.length === losses.length
      ? { steps: given, inferred: false }
      : lossSteps(losses.length, manifest.result.steps);
  return {
    name,
    steps: manifest.result.steps,
    lossFirst: Number.isFinite(manifest.result.lossFirst) ? manifest.result.lossFirst : null,
    lossLast: Number.isFinite(manifest.result.lossLast) ? manifest.result.lossLast : null,
    points: losses.map((loss, i) => ({ step: steps[i], loss })),
    stepsInferred: inferred,
  };
}

/** Every training of the run: stages in order, then the One-off baseline. */
export async function trainingCurves(store: ObjectStore, runId: string): Promise<TrainingCurve[]> {
  // Each training's manifest, `<runId>/train/<name>/manifest.json` (a run id holds no '/').
  const manifest = /^[^/]+\/train\/([^/]+)\/manifest\.json$/;
  const names = (await store.list(`${runId}/train`)).flatMap((key) => manifest.exec(key)?.[1] ?? []);
  const order = (n: string) => (n === ONE_OFF ? Infinity : Number(/^stage-(\d+)$/.exec(n)?.[1] ?? 1e9));
  const sorted = names.sort((a, b) => order(a) - order(b) || a.localeCompare(b));
  const curves = await Promise.all(sorted.map((n) => trainingCurve(store, runId, n)));
  return curves.filter((c): c is TrainingCurve => c !== undefined);
}

/** What the convergence check reads of a curve. */
export const lossRecord = (c: TrainingCurve): LossRecord => ({
  name: c.name,
  lossFirst: c.lossFirst,
  lossLast: c.lossLast,
  losses: c.points.map((p) => p.loss),
});
