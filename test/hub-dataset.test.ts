import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { fetchHubDataset, hubDatasetKeys, parseHubDataset } from '../activities/validate/hub-dataset';
import { InvalidDataError } from '../common/failures';

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'pift-hub-dataset-')));
const cache = join(dir, 'cache');
const storeDir = join(dir, 'store');
mkdirSync(storeDir);
const commit = '00112233445566778899aabbccddeeff00112233';
const rows = [
  { instruction: 'Say one.', input: '', output: 'one' },
  {
    messages: [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Héllo' },
    ],
  },
];
// The layout the hub library leaves in a cache: refs/main names the commit, snapshots/<commit>/ holds the files.
const repo = join(cache, 'hub', 'datasets--acme--rows');
mkdirSync(join(repo, 'snapshots', commit, 'data'), { recursive: true });
mkdirSync(join(repo, 'refs'));
writeFileSync(join(repo, 'refs', 'main'), commit);
// Parquet, as hub datasets mostly are, written by the trainer's own Python.
execFileSync(depsFromEnv().python, [
  '-c',
  'import json, sys, pyarrow as pa, pyarrow.parquet as pq; pq.write_table(pa.Table.from_pylist([json.loads(sys.argv[1])]), sys.argv[2])',
  JSON.stringify(rows[0]),
  join(repo, 'snapshots', commit, 'data', 'train-00000-of-00001.parquet'),
]);

const deps = {
  ...depsFromEnv({ ...process.env, PIFT_FILE_ROOTS: dir, PIFT_MODEL_CACHE: cache, HF_HUB_OFFLINE: '1' }),
  workDir: join(dir, 'work'),
};
const store = pathToFileURL(storeDir).href;

describe('hub datasets (hf://datasets/…)', function () {
  this.timeout(180_000);

  it('stores the rows of a cached hub dataset as JSONL with its commit, once', async () => {
    const result = await fetchHubDataset(deps, { runId: 'hub-run', store, uri: 'hf://datasets/acme/rows' });
    assert.equal(result.revision, commit);
    assert.equal(result.rows, 1);
    assert.equal(result.source, 'hf://datasets/acme/rows');
    const key = hubDatasetKeys('hub-run').rows;
    assert.equal(result.uri, pathToFileURL(join(storeDir, key)).href);
    assert.deepEqual(JSON.parse(readFileSync(join(storeDir, key), 'utf8')), rows[0]);
    const manifest = JSON.parse(readFileSync(join(storeDir, hubDatasetKeys('hub-run').manifest), 'utf8'));
    assert.equal(manifest.result.revision, commit);
    const again = await fetchHubDataset(deps, { runId: 'hub-run', store, uri: 'hf://datasets/acme/rows' });
    assert.equal(again.reused, true);
  });

  it('names the dataset and the cache when it is not there offline', async () => {
    const err = await fetchHubDataset(deps, { runId: 'hub-absent', store, uri: 'hf://datasets/acme/absent@v2' }).then(
      () => assert.fail('a dataset missing from the cache was read'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof InvalidDataError, String(err));
    assert.match(
      err.message,
      /^input\.dataset: hf:\/\/datasets\/acme\/absent@v2 is not in the dataset cache .*HF_HUB_OFFLINE=1/,
    );
  });

  it('refuses a malformed hub dataset URI without any I/O', () => {
    for (const bad of ['hf://datasets/name', 'hf://datasets/org/name@', 'hf://datasets/o/n/c/s/extra']) {
      assert.throws(() => parseHubDataset(bad, 'input.dataset'), /not a hub dataset/);
    }
    assert.equal(parseHubDataset('hf://datasets/org/name/cfg/test@v1', 'f'), 'hf://datasets/org/name/cfg/test@v1');
  });
});
