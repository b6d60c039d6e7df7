import { defineQuery } from '@temporalio/workflow';

/**
 * What the workflow itself knows. The trainer's step and loss are not here: they travel in the running activity's
 * heartbeat details, which clients read with describe() (client/run-progress.ts) at no cost to the history.
 */
export interface Progress {
  runId: string;
  /** 'validate' | 'score' | 'segment' | 'benchmarks' | 'stage-k' | 'generate' | 'evaluate' | 'report' | 'done' | 'failed' | 'cancelled' */
  step: string;
  stage?: number;
  stages?: number;
  finished: string[];
  error?: string;
}

export const progressQuery = defineQuery<Progress>('progress');
