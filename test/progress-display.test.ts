import assert from 'node:assert/strict';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { loadDataConverter } from '@temporalio/common/lib/internal-non-workflow';
import { temporal } from '@temporalio/proto';
import { describe, it } from 'mocha';
import {
  describeProgress,
  describeWaiting,
  formatEta,
  followProgress,
  runningWork,
  workProgress,
} from '../client/progress-display';
import { runningActivities, type RunProgress } from '../client/run-progress';
import { formatStatus } from '../client/run-status';
import type { Progress } from '../workflows/messages';

const { PENDING_ACTIVITY_STATE_STARTED: Started, PENDING_ACTIVITY_STATE_SCHEDULED: Scheduled } =
  temporal.api.enums.v1.PendingActivityState;

/** A pending activity as the server describes it, its heartbeat details encoded as the SDK sends them. */
const pending = (activityId: string, type: string, details?: unknown, state = Started) => ({
  activityId,
  activityType: { name: type },
  state,
  attempt: 1,
  maximumAttempts: 20,
  ...(details !== undefined ? { heartbeatDetails: { payloads: [defaultPayloadConverter.toPayload(details)] } } : {}),
});

// Each activity's heartbeat details as the activities write them (train-stage.ts, generate-answers.ts, evaluate.ts).
const stage2 = pending('stage-2', 'trainStage', { name: 'stage-2', step: 40, totalSteps: 120, loss: 1.23456 });
const oneOff = pending('one-off', 'trainStage', { name: 'one-off', step: 210, totalSteps: 360, loss: 0.98765 });
const generating = pending('generate-stage-1', 'generateAnswers', {
  name: 'stage-1',
  benchmark: 'heldout',
  done: 12,
  total: 48,
});
const judging = pending('evaluate', 'evaluate', { judged: 30, total: 144 });
const queued = pending('generate-stage-2', 'generateAnswers', undefined, Scheduled);

const progress = (
  step: string,
  activities: RunProgress['activities'],
  extra: Partial<RunProgress> = {},
): RunProgress => ({
  runId: 'r1',
  step,
  stages: 3,
  finished: ['score', 'segment'],
  status: 'RUNNING',
  taskQueue: 'pift-cpu',
  activities,
  training: {},
  ...extra,
});

describe('progress that tells the truth', () => {
  const converter = loadDataConverter();

  it('follows both trainings when a stage and the One-off baseline run at once, each with its own step count', async () => {
    const activities = await runningActivities({ pendingActivities: [stage2, oneOff] }, converter);
    const line = describeProgress(
      progress('stage-2', activities, { stage: 2, finished: ['score', 'segment', 'stage-1'] }),
    );
    assert.equal(
      line,
      'running: stage-2 (2/3), one-off | stage-2 step 40/120 loss 1.235 | one-off step 210/360 loss 0.988 | done: score, segment, stage-1',
    );
  });

  it("shows the trainer's tokens per second and time left when its heartbeat carries them", async () => {
    const fast = pending('stage-3', 'trainStage', {
      name: 'stage-3',
      step: 10,
      totalSteps: 100,
      loss: 2,
      gradNorm: 0.5,
      tokensPerSecond: 811.6,
      etaSeconds: 125.4,
    });
    const activities = await runningActivities({ pendingActivities: [fast] }, converter);
    const line = describeProgress(progress('stage-3', activities, { stage: 3 }));
    assert.equal(
      line,
      'running: stage-3 (3/3) | stage-3 step 10/100 loss 2.000 812 tok/s eta 2m05s | done: score, segment',
    );
    assert.deepEqual([45, 125, 11_220].map(formatEta), ['45s', '2m05s', '3h07m']);
  });

  it('follows the baseline alone once the stages are done, not the last stage', async () => {
    const activities = await runningActivities({ pendingActivities: [oneOff] }, converter);
    const p = progress('stage-3', activities, {
      stage: 3,
      finished: ['score', 'segment', 'stage-1', 'stage-2', 'stage-3'],
    });
    assert.deepEqual(
      runningWork(p).map((w) => [w.name, w.done, w.total]),
      [['one-off', 210, 360]],
    );
    assert.match(describeProgress(p), /\| one-off step 210\/360 loss 0\.988 \|/);
  });

  it('shows generation (prompts done of total) and judging (judgments done of total); a queued activity waits for a slot', async () => {
    const activities = await runningActivities({ pendingActivities: [generating, queued] }, converter);
    assert.equal(
      describeProgress(progress('generate', activities)),
      'running: generate-stage-1 | waiting for a free worker slot: generate-stage-2 | generate-stage-1 prompts 12/48 of heldout | done: score, segment',
    );
    const judged = await runningActivities({ pendingActivities: [judging] }, converter);
    assert.equal(
      describeProgress(progress('evaluate', judged)),
      'running: evaluate | evaluate judgments 30/144 | done: score, segment',
    );
    assert.deepEqual(workProgress({ name: 'score', details: { scored: 5, total: 300 } }), {
      name: 'score',
      kind: 'scoring',
      done: 5,
      total: 300,
    });
    assert.equal(workProgress({ name: 'segment', details: { step: 'segment' } }), undefined);
  });

  it('names what runs and what waits for a free GPU slot, not the step the workflow last entered', async () => {
    const waiting = {
      ...pending('stage-2', 'trainStage', undefined, Scheduled),
      activityOptions: { taskQueue: { name: 'pift-gpu' } },
    };
    const activities = await runningActivities({ pendingActivities: [oneOff, waiting] }, converter);
    assert.equal(
      describeProgress(progress('stage-2', activities, { stage: 2, finished: ['score', 'segment', 'stage-1'] })),
      'running: one-off | waiting for a free worker slot on pift-gpu: stage-2 | one-off step 210/360 loss 0.988 | done: score, segment, stage-1',
    );
  });

  it('says what a waiting step waits for, for how long, why, and how much of the outage tolerance is left', async () => {
    const now = Date.parse('2026-01-01T12:06:00Z');
    const details = {
      waitingFor: 'the LLM endpoint http://llm:8000/v1',
      since: '2026-01-01T12:00:00Z',
      giveUpAt: '2026-01-01T14:00:00Z',
      lastError: 'Request timed out.',
    };
    const activities = await runningActivities(
      { pendingActivities: [pending('score', 'scoreDifficulty', details)] },
      converter,
    );
    const expected =
      'waiting for the LLM endpoint http://llm:8000/v1 for 6m00s (Request timed out.); gives up in 1h54m (PIFT_OUTAGE_TOLERANCE)';
    assert.equal(describeWaiting(activities[0].details, now), expected);
    assert.equal(describeProgress(progress('score', activities, { finished: [] }), now), `running: score ${expected}`);
    const text = formatStatus({ runId: 'r1', uiLink: 'u', progress: progress('score', activities), unpolled: [] });
    assert.match(
      text,
      /^ {2}waiting for the LLM endpoint http:\/\/llm:8000\/v1 for .* \(Request timed out\.\); gives up in /m,
    );
  });

  it('pift status names the count of each running activity', async () => {
    const activities = await runningActivities({ pendingActivities: [generating, judging] }, converter);
    const text = formatStatus({ runId: 'r1', uiLink: 'u', progress: progress('generate', activities), unpolled: [] });
    assert.match(
      text,
      /running: generate-stage-1 \(generateAnswers, started\), attempt 1\/20 \| prompts 12\/48 of heldout$/m,
    );
    assert.match(text, /running: evaluate \(evaluate, started\), attempt 1\/20 \| judgments 30\/144$/m);
  });

  it('keeps the trainer map of older callers working', () => {
    const p: Progress & { training: RunProgress['training'] } = {
      runId: 'r1',
      step: 'stage-1',
      stage: 1,
      stages: 3,
      finished: [],
      training: { 'stage-1': { name: 'stage-1', step: 3, totalSteps: 9 } },
    };
    assert.equal(describeProgress(p), 'stage-1 (1/3) | stage-1 step 3/9');
  });

  it('the follow loop prints each change as it polls, training then generation then judging', async () => {
    // A client whose run moves on at each describe(): what the server would answer, poll after poll.
    const script = [
      { step: 'stage-2', activities: [stage2, oneOff] },
      { step: 'stage-2', activities: [stage2, oneOff] },
      { step: 'generate', activities: [generating] },
      { step: 'evaluate', activities: [judging] },
    ];
    let polls = 0;
    let finish: (v: string) => void = () => undefined;
    const result = new Promise<string>((resolve) => (finish = resolve));
    const workflow = {
      options: { loadedDataConverter: converter },
      withDeadline: <T>(_deadline: number, fn: () => Promise<T>) => fn(),
      getHandle: () => ({
        describe: async () => {
          const s = script[Math.min(polls++, script.length - 1)];
          if (polls === script.length) setTimeout(() => finish('closed'), 30);
          return {
            raw: { pendingActivities: s.activities },
            status: { name: 'RUNNING' },
            taskQueue: 'pift-cpu',
            typedSearchAttributes: { get: () => s.step },
          };
        },
        query: async () => ({ runId: 'r1', step: script[Math.min(polls, script.length) - 1].step, finished: [] }),
      }),
    };
    const written: string[] = [];
    const stream = { isTTY: false, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream;
    const handle = { client: { workflow } as unknown as Client, workflowId: 'r1' } as unknown as WorkflowHandle;
    assert.equal(await followProgress(handle, result, { everyMs: 5, stream }), 'closed');
    assert.deepEqual(written.slice(0, 3), [
      'running: stage-2, one-off | stage-2 step 40/120 loss 1.235 | one-off step 210/360 loss 0.988\n',
      'running: generate-stage-1 | generate-stage-1 prompts 12/48 of heldout\n',
      'running: evaluate | evaluate judgments 30/144\n',
    ]);
  });
});
