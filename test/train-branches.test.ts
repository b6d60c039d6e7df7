import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { after, before, describe, it } from 'mocha';
import type { SegmentResult } from '../activities/types';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import { modelCheckQueue } from '../common/constants';
import { phasedIftPipeline } from '../workflows';
import { sharedTemporal } from './helpers/temporal';
import { workflowBundle } from './helpers/workflow-bundle';

const split = (stage: number) => ({
  stage,
  uri: `s3://b/stage-${stage}`,
  rows: 8,
  minScore: 1,
  maxScore: 5,
  sha256: 'x',
});
const segment: SegmentResult = {
  stages: [split(1), split(2)],
  oneOff: { uri: 's3://b/one-off', rows: 16, sha256: 'y' },
  thresholds: [3],
  unscored: 0,
  summaryUri: 's3://b/summary',
};

/**
 * The workflow's shape with stand-in activities (no Python, no store): the stage chain, the One-off baseline and the
 * controls are branches of one Promise.all, so the first branch to fail ends the run while the others still train.
 */
describe('training branches', () => {
  const cpuQueue = `cpu-${randomUUID()}`;
  const gpuQueue = `gpu-${randomUUID()}`;
  const trainings: string[] = [];
  const cancelled: string[] = [];
  let workers: Worker[] = [];
  let running: Promise<unknown>;

  before(async () => {
    const env = await sharedTemporal();
    const common = { connection: env.nativeConnection, namespace: env.namespace ?? 'default' };
    const scored = { scorer: 'stand-in', rows: 16 };
    workers = [
      await Worker.create({
        ...common,
        taskQueue: cpuQueue,
        workflowBundle: await workflowBundle(),
        activities: {
          resolveInput: async (input: unknown, id: string) =>
            resolvePipelineInput(input, id, { PIFT_STORE: 's3://b/runs', PIFT_GPU_TASK_QUEUE: gpuQueue }),
          preflight: async () => ({ gpuCheckWait: '1 minute' }),
          scoreDifficulty: async () => scored,
          segmentStages: async () => segment,
          exportStages: async () => ({ uri: 's3://b/export', layout: 'alpaca', files: 2 }),
          prepareBenchmarks: async () => [],
        },
      }),
      await Worker.create({
        ...common,
        taskQueue: modelCheckQueue(gpuQueue),
        activities: { checkModel: async () => ({}) },
      }),
      await Worker.create({
        ...common,
        taskQueue: gpuQueue,
        maxHeartbeatThrottleInterval: '100 ms',
        activities: {
          // The baseline fails at once; a stage trains until it is cancelled (hours, in a real run).
          trainStage: async ({ name }: { name: string }) => {
            trainings.push(name);
            if (name === 'one-off') throw ApplicationFailure.nonRetryable('the baseline broke', 'BadInput');
            const ctx = Context.current();
            for (;;) {
              ctx.heartbeat();
              await Promise.race([ctx.sleep(100), ctx.cancelled]).catch((err) => {
                cancelled.push(name);
                throw err;
              });
            }
          },
        },
      }),
    ];
    running = Promise.all(workers.map((w) => w.run()));
  });

  after(async () => {
    for (const w of workers) w.shutdown();
    await running;
  });

  it("a baseline that fails at once fails the run while stage 1 still trains, and stage 1's trainer is stopped", async () => {
    const env = await sharedTemporal();
    const run = env.client.workflow.execute(phasedIftPipeline, {
      taskQueue: cpuQueue,
      workflowId: `branches-${randomUUID()}`,
      args: [{ dataset: 's3://b/train.jsonl' }],
    });
    await assert.rejects(run, (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      // WorkflowFailedError ← ActivityFailure (one-off) ← the activity's own failure.
      assert.match((err.cause?.cause as Error | undefined)?.message ?? '', /the baseline broke/);
      return true;
    });
    assert.deepEqual(trainings.sort(), ['one-off', 'stage-1']);
    assert.deepEqual(cancelled, ['stage-1'], 'the stage still training was cancelled before the run failed');
  });
});
