import assert from 'node:assert/strict';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'mocha';
import { workflowBundle } from './helpers/workflow-bundle';

const dir = join(__dirname, 'histories');

/**
 * Histories recorded from real runs (`PIFT_RECORD_HISTORIES=1 npm test` rewrites them). A workflow change that would
 * break runs already in flight fails here with a determinism error; guard such changes with `patched()`.
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
