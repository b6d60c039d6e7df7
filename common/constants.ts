// Names shared by workflows, workers and clients. Workflow-safe: no Node built-ins here.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Workflows, scoring, segmentation and judging run here (the CPU worker). */
export const CPU_TASK_QUEUE = 'pift-cpu';
/** Training and generation run here (one GPU worker process per GPU, one activity at a time). */
export const GPU_TASK_QUEUE = 'pift-gpu';

/**
 * The GPU worker's side queue for its model check: served beside training, so a run's check never waits behind another
 * run's hours of training, and still proves that a GPU worker process of that queue is alive.
 */
export const modelCheckQueue = (gpuTaskQueue: string): string => `${gpuTaskQueue}-check`;

/**
 * The CPU worker's side queue for scoring shards (`scorer.shardRows`): served by a worker of its own in each CPU worker
 * process, with a few slots, so one worker never takes every shard of a run at once (memory per worker stays bounded)
 * and the shards spread over however many CPU workers run.
 */
export const shardQueue = (cpuTaskQueue: string): string => `${cpuTaskQueue}-shards`;

export const WORKFLOW_TYPE = 'phasedIftPipeline';

/** The step a run is in, so the Web UI can filter runs with `PiftStep="stage-2"`. */
export const PIFT_STEP = defineSearchAttributeKey('PiftStep', SearchAttributeType.KEYWORD);

/** Label of the One-off baseline model everywhere (store keys, reports). */
export const ONE_OFF = 'one-off';

/** Datasets named by this prefix are read from the Hugging Face hub once, into the run's store. */
export const HUB_DATASET_PREFIX = 'hf://datasets/';

/** The paper's difficulty scale (GPT-4 rates each instruction from 1 to 5): scores read or parsed must lie on it. */
export const SCORE_MIN = 1;
export const SCORE_MAX = 5;

export const stageName = (k: number): string => `stage-${k}`;

/** `scorer.shardRows` shards these scorers only: `file` and `ifd` ask nothing that more CPU workers would speed up. */
export const SHARDABLE_SCORERS: readonly string[] = ['auto', 'openai', 'offline'];
