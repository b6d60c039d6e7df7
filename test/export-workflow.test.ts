import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'mocha';
import { startRun } from '../client';
import { openStore } from '../store';
import { startHarness } from './helpers/pipeline-harness';

const fixtures = join(__dirname, 'fixtures', 'formats');

describe('an export-only run on Temporal and S3', function () {
  this.timeout(5 * 60_000);

  it('scores, segments and exports a Parquet conversation dataset with no GPU worker running', async () => {
    const h = await startHarness();
    h.llm.handle((req) => {
      const user = String(req.messages.find((m) => m.role === 'user')?.content ?? '');
      // One conversation per stage (cuts 1.5 and 3.5); the prompt shows the turns up to the last user turn.
      const score = user.includes('User: Copy the word') ? '1' : user.includes('User: Name a colour') ? '2.5' : '4';
      return { content: score };
    });
    const data = openStore(`s3://${h.s3.bucket}/datasets`, h.workerEnv);
    await data.put('chat/sharegpt.parquet', readFileSync(join(fixtures, 'sharegpt.parquet')));
    const runId = 'export-only-run';
    const run = await startRun(
      h.temporal.client,
      {
        dataset: data.uriFor('chat/sharegpt.parquet'),
        runId,
        store: h.storeUri,
        gpuTaskQueue: h.gpuQueue,
        training: { mode: 'export-only' },
      },
      { taskQueue: h.cpuQueue },
    );
    const result = await run.handle.result();
    assert.deepEqual(result.training, []);
    assert.deepEqual(
      result.stages.map((s) => s.rows),
      [1, 1, 1],
    );
    assert.equal(result.export?.layout, 'messages');
    assert.equal(result.export?.uri, h.store.uriFor(`${runId}/export`));

    const info = JSON.parse(await h.store.getText(`${runId}/export/dataset_info.json`)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(info), ['pift_stage_1', 'pift_stage_2', 'pift_stage_3', 'pift_one_off']);
    const stage3 = JSON.parse(await h.store.getText(`${runId}/export/stage-3.jsonl`)) as { messages: unknown[] };
    assert.equal(stage3.messages.length, 4);
    const dataset = await h.store.getText(`${runId}/score/dataset.jsonl`);
    assert.match(dataset, /"id":"c2","instruction":"Name a colour\.","input":"","output":"Blue\.","messages":\[/);

    // Nothing was trained or checked on the GPU queue.
    const history = await run.handle.fetchHistory();
    const activities = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter((name): name is string => name !== undefined);
    assert.deepEqual(activities, ['preflight', 'scoreDifficulty', 'segmentStages', 'exportStages']);
  });

  it('reads a hub dataset once into the run, at its cached commit, offline', async () => {
    const h = await startHarness();
    h.llm.handle((req) => {
      const user = String(req.messages.find((m) => m.role === 'user')?.content ?? '');
      return { content: user.includes('Copy') ? '1' : user.includes('colour') ? '2.5' : '4' };
    });
    // The layout the hub library leaves in the worker's cache: refs/main names the commit, snapshots/<commit>/ the files.
    h.workerEnv.HF_HUB_OFFLINE = '1';
    const commit = '0123456789abcdef0123456789abcdef01234567';
    const repo = join(h.workerEnv.PIFT_WORKDIR!, 'model-cache', 'hub', 'datasets--acme--tasks');
    mkdirSync(join(repo, 'snapshots', commit), { recursive: true });
    mkdirSync(join(repo, 'refs'));
    writeFileSync(join(repo, 'refs', 'main'), commit);
    const rows = [
      { instruction: 'Copy the word "sun".', input: '', output: 'sun' },
      { instruction: 'Name a colour.', input: '', output: 'Blue.' },
      { instruction: 'Prove that there are infinitely many primes.', input: '', output: 'Suppose not ...' },
    ];
    writeFileSync(join(repo, 'snapshots', commit, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');

    const runId = 'hub-dataset-run';
    const run = await startRun(
      h.temporal.client,
      {
        dataset: 'hf://datasets/acme/tasks',
        runId,
        store: h.storeUri,
        gpuTaskQueue: h.gpuQueue,
        training: { mode: 'export-only' },
      },
      { taskQueue: h.cpuQueue },
    );
    const result = await run.handle.result();
    assert.deepEqual(
      result.stages.map((s) => s.rows),
      [1, 1, 1],
    );
    const manifest = JSON.parse(await h.store.getText(`${runId}/dataset/manifest.json`)) as {
      result: { revision: string; rows: number };
    };
    assert.equal(manifest.result.revision, commit);
    assert.equal(manifest.result.rows, 3);
    const stage1 = JSON.parse(await h.store.getText(`${runId}/export/stage-1.jsonl`)) as { output: string };
    assert.equal(stage1.output, 'sun');
    const history = await run.handle.fetchHistory();
    const activities = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter((name): name is string => name !== undefined);
    assert.deepEqual(activities, ['preflight', 'fetchHubDataset', 'scoreDifficulty', 'segmentStages', 'exportStages']);
  });
});
