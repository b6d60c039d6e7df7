/**
 * How long an activity waits on an idle single-slot worker (the GPU worker's shape) when it was scheduled while the
 * worker was busy: `npx ts-node bench/dispatch-latency.ts [--partitions N] [--rounds N]`. With N task queue
 * partitions and one poller, the scheduled task sits in one partition while the freed poller's long poll may land
 * on another.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { Command } from 'commander';
import { findTemporalBinary } from '../test/helpers/temporal';

async function main() {
  const opts = new Command()
    .option('--partitions <n>', 'task queue partitions of the dev server (unset: its default)')
    .option('--rounds <n>', 'rounds', '6')
    .option('--hold-ms <n>', 'how long the first activity runs', '3000')
    .option('--db <file>', 'persist to this SQLite file, as the demo does (unset: in memory)')
    .parse()
    .opts<{ partitions?: string; rounds: string; holdMs: string; db?: string }>();
  const extraArgs = opts.partitions
    ? [
        '--dynamic-config-value',
        `matching.numTaskqueueReadPartitions=${opts.partitions}`,
        '--dynamic-config-value',
        `matching.numTaskqueueWritePartitions=${opts.partitions}`,
      ]
    : [];
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: findTemporalBinary() }, extraArgs, dbFilename: opts.db },
  });
  try {
    const taskQueue = 'dispatch-latency-activities';
    const activityWorker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      activities: {
        hold: async (ms: number) => {
          await new Promise((r) => setTimeout(r, ms));
          return Date.now();
        },
        mark: async () => Date.now(),
      },
      maxConcurrentActivityTaskExecutions: 1,
    });
    const workflowWorker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: 'dispatch-latency-workflows',
      workflowsPath: require.resolve('./dispatch-latency-workflow'),
    });
    const rounds = async () => {
      const gaps: number[] = [];
      for (let i = 0; i < Number(opts.rounds); i++) {
        const r = await env.client.workflow.execute('busyThenNext', {
          taskQueue: 'dispatch-latency-workflows',
          workflowId: `round-${i}-${Date.now()}`,
          args: [Number(opts.holdMs)],
        });
        gaps.push(
          (r as { firstEnded: number; secondStarted: number }).secondStarted - (r as { firstEnded: number }).firstEnded,
        );
        console.log(`round ${i + 1}: idle ${gaps[gaps.length - 1]} ms`);
      }
      return gaps;
    };
    const gaps = await activityWorker.runUntil(workflowWorker.runUntil(rounds()));
    gaps.sort((a, b) => a - b);
    console.log(
      `partitions=${opts.partitions ?? 'default'} idle_ms_median=${gaps[gaps.length >> 1]} idle_ms_max=${gaps[gaps.length - 1]}`,
    );
  } finally {
    await env.teardown();
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
