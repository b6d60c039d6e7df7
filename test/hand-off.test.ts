import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { before, describe, it } from 'mocha';
import { startRun } from '../client';
import { createGpuActivities, depsFromEnv } from '../activities';
import { treeHash } from '../activities/artifacts/hand-off';
import type { StepManifest } from '../activities/artifacts/manifest';
import { trainKeys } from '../activities/artifacts/run-keys';
import type { TrainInput, TrainResult } from '../activities/types';
import { modelCheckQueue } from '../common/constants';
import { onGlobalTeardown } from './hooks';
import { balancedDemo, startHarness, type Harness } from './helpers/pipeline-harness';
import { stubTrainerEnv } from './helpers/stub-trainer';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** One bit in the middle of a weights file flipped: the same size, so only its sha256 tells. */
function flipByte(bytes: Buffer): Buffer {
  const copy = Buffer.from(bytes);
  copy[copy.length >> 1] ^= 0x01;
  return copy;
}

/**
 * Stage 1's final weights damaged right after it committed, before stage 2 reads them: the run repairs or recomputes
 * them by itself and ends byte-identical to an undisturbed run. Two stages of 12 rows, 2 steps each, checkpoints
 * every step. The hand-offs are checked by the activities, not the trainer: the stub trainer trains here (the same
 * protocol and folders, deterministic bytes, no torch); the real one's checkpoints are trusted in checkpoint-trust. The first run is the second's reference: in it nothing was
 * trained twice nor from damaged bytes, and stage 1's weights are checked against what it committed before the damage.
 */
describe('hand-offs verified by construction', function () {
  this.timeout(10 * 60_000);
  let h: Harness;
  let workDir: string;
  /** Runs once on stage 1's result, as its activity returns: the damage under test. */
  let damage: ((input: TrainInput) => Promise<void>) | undefined;
  const trainCalls: string[] = [];

  before(async () => {
    h = await startHarness({ workerEnv: stubTrainerEnv() });
    const deps = { ...depsFromEnv(h.workerEnv), env: h.workerEnv };
    workDir = deps.workDir;
    const activities = createGpuActivities(deps);
    const connection = h.temporal.nativeConnection;
    const workers = [
      await Worker.create({
        connection,
        taskQueue: h.gpuQueue,
        maxConcurrentActivityTaskExecutions: 1,
        activities: {
          ...activities,
          trainStage: async (input: TrainInput): Promise<TrainResult> => {
            trainCalls.push(`${input.runId}/${input.name}`);
            const result = await activities.trainStage(input);
            const hurt = input.name === 'stage-1' ? damage : undefined;
            damage = undefined;
            await hurt?.(input);
            return result;
          },
        },
      }),
      await Worker.create({
        connection,
        taskQueue: modelCheckQueue(h.gpuQueue),
        activities: { checkModel: activities.checkModel },
      }),
    ];
    const running = Promise.all(workers.map((w) => w.run()));
    onGlobalTeardown(async () => {
      for (const w of workers) w.shutdown();
      await running;
    });
  });

  async function runToEnd(runId: string) {
    const rows = balancedDemo(2);
    const dataset = await h.upload(`${runId}/train.jsonl`, rows.map((r) => JSON.stringify(r)).join('\n'));
    const run = await startRun(
      h.temporal.client,
      {
        dataset,
        runId,
        store: h.storeUri,
        gpuTaskQueue: h.gpuQueue,
        scorer: { kind: 'offline' },
        stages: { count: 2, rule: 'quantiles' },
        baseline: { mode: 'skip' },
        training: { epochs: 1, batchSize: 6, globalBatchSize: 6, saveSteps: 1 },
      },
      { taskQueue: h.cpuQueue },
    );
    return run.handle.result();
  }

  /** The trained files of the run, by their paths under the stage, with the sha256 of the bytes now in the store. */
  async function trainedBytes(runId: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const name of ['stage-1', 'stage-2']) {
      const keys = trainKeys(runId, name);
      const manifest = JSON.parse(await h.store.getText(keys.manifest)) as StepManifest<unknown>;
      // What any two runs differ in: the trainer's arguments (they name the run's own folders) and its timings.
      for (const o of manifest.outputs.filter((e) => !/\/(training_args\.bin|metrics\/.*)$/.test(e.key))) {
        const stored = sha(await h.store.get(o.key));
        assert.equal(stored, o.sha256, `${o.key} in the store is what its manifest lists`);
        out[o.key.slice(runId.length + 1)] = stored;
      }
    }
    return out;
  }

  /** The trained files of the garbage run: nothing in it was trained on damaged bytes, or twice. */
  let undisturbed: Record<string, string>;

  it('same-size garbage in the stored weights: the intact copy on the worker is used and stored again', async () => {
    const runId = 'handoff-garbage';
    const weights = `${trainKeys(runId, 'stage-1').final}/model.safetensors`;
    let committed: string | undefined;
    damage = async () => {
      committed = sha(await h.store.get(weights));
      const size = (await h.store.head(weights))!.size;
      await h.store.put(weights, randomBytes(size));
    };
    const result = await runToEnd(runId);
    assert.equal(damage, undefined, 'the damage was done');
    assert.deepEqual(
      trainCalls.filter((c) => c.startsWith(runId)),
      [`${runId}/stage-1`, `${runId}/stage-2`],
      'nothing was trained twice',
    );
    assert.equal(result.training.find((t) => t.name === 'stage-2')?.attempts, 1, 'no attempt failed');
    // Stage 2 trained from the intact copy, and the store holds stage 1's weights as committed again.
    undisturbed = await trainedBytes(runId);
    assert.equal(undisturbed['train/stage-1/final/model.safetensors'], committed);
  });

  it('a flipped byte in the weights, in the store and on the worker: stage 1 is recomputed in the run', async () => {
    const runId = 'handoff-flip';
    const keys = trainKeys(runId, 'stage-1');
    const weights = `${keys.final}/model.safetensors`;
    damage = async () => {
      await h.store.put(weights, flipByte(await h.store.get(weights)));
      const manifest = JSON.parse(await h.store.getText(keys.manifest)) as StepManifest<unknown>;
      const entries = manifest.outputs.filter((o) => o.key.startsWith(`${keys.final}/`));
      const cached = join(workDir, 'models', treeHash(entries, keys.final), 'model.safetensors');
      await writeFile(cached, flipByte(await readFile(cached)));
    };
    const result = await runToEnd(runId);
    assert.equal(damage, undefined, 'the damage was done');
    assert.deepEqual(
      trainCalls.filter((c) => c.startsWith(runId)),
      [`${runId}/stage-1`, `${runId}/stage-2`, `${runId}/stage-1`, `${runId}/stage-2`],
      'stage 2 refused the damaged weights at once; stage 1 ran again, then stage 2',
    );
    assert.equal(result.training.find((t) => t.name === 'stage-2')?.attempts, 1, 'no attempt was spent on it');
    assert.deepEqual(await trainedBytes(runId), undisturbed);
  });
});
