import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'mocha';
import { CPU_TASK_QUEUE, GPU_TASK_QUEUE } from '../common/constants';
import { workerDefaults } from '../activities/worker-defaults';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import { parseInputLocations } from '../activities/validate/check-input';
import { InvalidDataError, WorkerMisconfiguredError } from '../common/failures';
import { judgeModel, scorerModel } from '../activities/llm/llm-client';
import { temporalConfigFromEnv } from '../workers/config';
import { cpuWorkerNodeFlags } from './helpers/cpu-worker-flags';

describe('worker defaults', () => {
  it('fall back to the built-in names with an empty environment', () => {
    assert.deepEqual(workerDefaults({}), {
      store: pathToFileURL(resolve('.pift/store')).href,
      cpuTaskQueue: CPU_TASK_QUEUE,
      gpuTaskQueue: GPU_TASK_QUEUE,
      scorerModel: 'gpt-4-0613',
      judgeModel: 'gpt-4-0613',
    });
    assert.equal(workerDefaults({ PIFT_STORE: '' }).store, pathToFileURL(resolve('.pift/store')).href);
  });

  it('read each variable', () => {
    const env = {
      PIFT_STORE: 's3://b/runs',
      PIFT_CPU_TASK_QUEUE: 'cpu-b',
      PIFT_GPU_TASK_QUEUE: 'gpu-b',
      PIFT_SCORER_MODEL: 'scorer-x',
      PIFT_JUDGE_MODEL: 'judge-y',
    };
    assert.deepEqual(workerDefaults(env), {
      store: 's3://b/runs',
      cpuTaskQueue: 'cpu-b',
      gpuTaskQueue: 'gpu-b',
      scorerModel: 'scorer-x',
      judgeModel: 'judge-y',
    });
    // The model comes with the setting it came from, named when the endpoint does not know it.
    assert.deepEqual(scorerModel(env), { model: 'scorer-x', setting: 'PIFT_SCORER_MODEL' });
    assert.deepEqual(judgeModel(env), { model: 'judge-y', setting: 'PIFT_JUDGE_MODEL' });
    assert.equal(judgeModel(env, 'from-input').model, 'from-input');
  });

  it('send a run to the queue the GPU worker polls when the input names none', () => {
    const env = { PIFT_GPU_TASK_QUEUE: 'gpu-b', PIFT_CPU_TASK_QUEUE: 'cpu-b' };
    const run = resolvePipelineInput({ dataset: 's3://b/x.jsonl' }, 'wf', env);
    assert.equal(run.gpuTaskQueue, 'gpu-b');
    assert.equal(run.gpuTaskQueue, temporalConfigFromEnv(env).gpuTaskQueue);
    assert.equal(temporalConfigFromEnv(env).cpuTaskQueue, 'cpu-b');
    assert.equal(resolvePipelineInput({ dataset: 'x' }, 'wf', {}).gpuTaskQueue, GPU_TASK_QUEUE);
    assert.equal(resolvePipelineInput({ dataset: 'x', gpuTaskQueue: 'mine' }, 'wf', env).gpuTaskQueue, 'mine');
  });

  it('give the store unless the input names one', () => {
    assert.equal(resolvePipelineInput({ dataset: 'x' }, 'wf', { PIFT_STORE: 's3://b/p' }).store, 's3://b/p');
    assert.equal(
      resolvePipelineInput({ dataset: 'x', store: 's3://c' }, 'wf', { PIFT_STORE: 's3://b/p' }).store,
      's3://c',
    );
  });

  it("make a bad PIFT_STORE the worker's misconfiguration, and the same store named by the input the run's", () => {
    for (const store of ['gs://b/runs', 'file://other-host/runs', '/outside/runs']) {
      const env = { PIFT_STORE: store };
      assert.throws(
        () => parseInputLocations(resolvePipelineInput({ dataset: 's3://b/d.jsonl' }, 'wf', env), env, ['/allowed']),
        (err: unknown) => err instanceof WorkerMisconfiguredError && err.setting === 'PIFT_STORE',
        store,
      );
      const named = resolvePipelineInput({ dataset: 's3://b/d.jsonl', store }, 'wf', {});
      assert.throws(
        () => parseInputLocations(named, {}, ['/allowed']),
        (err: unknown) => err instanceof InvalidDataError && err.where.field === 'input.store',
        store,
      );
    }
  });

  it('bound the CPU worker heap below 2 GB, as `npm run worker:cpu` starts it', () => {
    // At 2 GB or more V8 lets garbage fill the heap to 4 times what is live before a full collection, under it at
    // most twice: the score step's peak RSS (bench:scale, docs/row-engine.md).
    const flags = cpuWorkerNodeFlags();
    assert.match(flags.join(' '), /--max-old-space-size=\d+/);
    const limit = execFileSync(process.execPath, [...flags, '-p', 'v8.getHeapStatistics().heap_size_limit']);
    assert.ok(Number(limit) < 2 ** 31, `heap_size_limit ${limit}`);
  });
});
