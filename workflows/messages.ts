import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { TrainerProgress } from '../activities/types';

export interface Progress {
  runId: string;
  /** 'validate' | 'score' | 'segment' | 'benchmarks' | 'stage-k' | 'generate' | 'evaluate' | 'done' | 'failed' | 'cancelled' */
  step: string;
  stage?: number;
  stages?: number;
  /** Latest trainer report per training ('stage-1', 'one-off', ...). */
  training: Record<string, TrainerProgress>;
  finished: string[];
  error?: string;
}

export const progressQuery = defineQuery<Progress>('progress');
/** Sent (throttled) by the GPU activity so the query can show the trainer's step and loss. */
export const trainerProgressSignal = defineSignal<[TrainerProgress]>('trainerProgress');
