import assert from 'node:assert/strict';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'mocha';
import { workflowBundle } from './helpers/workflow-bundle';

const dir = join(__dirname, 'histories');

/**
 * Histories recorded from real runs of the current build (`PIFT_RECORD_HISTORIES=1` while the recording tests run
 * rewrites them). Runs are pinned to the build they started on (docs/worker-versions.md), so a workflow change that
 * fails here is a new build: re-record. Only a fix that must reach runs already in flight keeps the old histories
 * and guards the fix with `patched()`.
 */
describe('recorded workflow histories replay deterministically', function () {
  this.timeout(120_000);
  const files = readdirSync(dir).filter((f) => f.endsWith('.pb'));

  it('has recorded histories to replay', () => assert.ok(files.length > 0));

  for (const file of files) {
    it(file, async () => {
      const history = temporal.api.history.v1.History.decode(readFileSync(join(dir, file)));
      const workflowId = file.replace(/\.pb$/, '');
      await Worker.runReplayHistory(
        { workflowBundle: await workflowBundle(), replayName: workflowId },
        history,
        workflowId,
      );
    });
  }
});
