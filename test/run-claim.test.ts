import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { describe, it } from 'mocha';
import { startRun } from '../client';
import { failureTypeOf } from '../common/failures';
import { PIFT_STEP } from '../common/constants';
import { LocalStore } from '../store';
import { phasedIftPipeline } from '../workflows';
import { balancedDemo, startHarness } from './helpers/pipeline-harness';

describe('one run id, one run', function () {
  this.timeout(5 * 60_000);

  it('a local store gives a key to exactly one of several writers racing for it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pift-claim-'));
    try {
      const store = new LocalStore(dir);
      const won = await Promise.all(Array.from({ length: 8 }, (_, i) => store.putIfAbsent('r/owner.json', `${i}`)));
      assert.equal(won.filter(Boolean).length, 1);
      assert.equal(await store.getText('r/owner.json'), String(won.indexOf(true)));
      assert.deepEqual(await store.list('r'), ['r/owner.json'], 'no temporary file is left');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('two workflows started at once with one run id: one runs, the other fails as BadInput naming runId', async () => {
    const h = await startHarness();
    h.llm.handle(() => ({ content: '3' }));
    const rows = balancedDemo(1);
    const dataset = await h.upload('claim/train.jsonl', rows.map((r) => JSON.stringify(r)).join('\n'));
    const input = {
      dataset,
      runId: 'claimed-run',
      store: h.storeUri,
      gpuTaskQueue: h.gpuQueue,
      // No answer cache: the harness's store is shared with other tests, which may have bought these rows' scores.
      scorer: { kind: 'openai' as const, cache: false },
      stages: { count: 1, thresholds: [] },
      training: { mode: 'export-only' as const },
    };
    // As the Web UI or a service would: the client, with workflow ids of their own.
    const start = (workflowId: string) =>
      h.temporal.client.workflow.start(phasedIftPipeline, {
        taskQueue: h.cpuQueue,
        workflowId,
        args: [input],
        typedSearchAttributes: [{ key: PIFT_STEP, value: 'validate' }],
      });
    const handles = await Promise.all([start('claim-a'), start('claim-b')]);
    const outcomes = await Promise.allSettled(handles.map((w) => w.result()));
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    const lost = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
    assert.equal(won.length, 1, 'exactly one of the two ran');
    assert.equal(lost.length, 1);
    assert.ok(lost[0] instanceof WorkflowFailedError);
    assert.equal(failureTypeOf(lost[0]), 'BadInput');
    assert.match(
      String((lost[0].cause?.cause as Error | undefined)?.message),
      /runId.*claimed-run.*belongs to workflow/,
    );
    const asked = () => h.llm.requests.filter((r) => r.chat).length;
    assert.equal(asked(), rows.length, 'every row was asked once: nothing was paid twice');
    assert.equal(h.llm.requests.length, rows.length + 1, "the loser sent nothing, not even the winner's one probe");

    // The owner's own re-run (what `resume` starts) still works, and finds every step finished.
    const winner = handles[outcomes.findIndex((o) => o.status === 'fulfilled')].workflowId;
    const again = await h.temporal.client.workflow.execute(phasedIftPipeline, {
      taskQueue: h.cpuQueue,
      workflowId: winner,
      args: [input],
      typedSearchAttributes: [{ key: PIFT_STEP, value: 'validate' }],
    });
    assert.deepEqual(again.stages, (won[0] as PromiseFulfilledResult<typeof again>).value.stages);
    assert.equal(asked(), rows.length, 'nothing was asked again');
    // The CLI, which uses the run id as the workflow id, is refused the same way.
    await assert.rejects(startRun(h.temporal.client, input, { taskQueue: h.cpuQueue }).then((r) => r.handle.result()));
  });
});
