import assert from 'node:assert/strict';
import { ActivityFailure, ApplicationFailure, WorkflowFailedError, type Client } from '@temporalio/client';
import { defaultPayloadConverter, RetryState } from '@temporalio/common';
import { loadDataConverter } from '@temporalio/common/lib/internal-non-workflow';
import { temporal } from '@temporalio/proto';
import { msNumberToTs } from '@temporalio/common/lib/time';
import { describe, it } from 'mocha';
import {
  busyWorkers,
  failureHint,
  formatStatus,
  neededQueues,
  runFailureOf,
  type RunStatus,
} from '../client/run-status';
import { runningActivities, type RunProgress } from '../client/run-progress';
import { failedStep } from '../client/list-runs';
import { FailureType, toTemporalFailure, WorkerMisconfiguredError } from '../common/failures';

const converter = loadDataConverter();

/** A describe() response as the server sends it: stage 2 training on its third attempt after a crash. */
function describeResponse(): temporal.api.workflowservice.v1.IDescribeWorkflowExecutionResponse {
  return {
    pendingActivities: [
      {
        activityId: 'stage-2',
        activityType: { name: 'trainStage' },
        state: temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
        attempt: 3,
        maximumAttempts: 20,
        activityOptions: { taskQueue: { name: 'pift-gpu' } },
        heartbeatDetails: {
          payloads: [
            defaultPayloadConverter.toPayload({ name: 'stage-2', step: 40, totalSteps: 120, loss: 1.23456, pid: 77 }),
          ],
        },
        lastFailure: {
          message: 'trainer exited with code -9',
          source: 'TypeScriptSDK',
          applicationFailureInfo: { type: 'TrainerCrashed', nonRetryable: false },
        },
      },
    ],
  };
}

const progressWith = (extra: Partial<RunProgress>): RunProgress => ({
  runId: 'r1',
  step: 'stage-2',
  stage: 2,
  stages: 3,
  finished: ['score', 'segment', 'stage-1'],
  status: 'RUNNING',
  taskQueue: 'pift-cpu',
  activities: [],
  training: {},
  ...extra,
});

describe('pift status', () => {
  it('decodes a pending activity: its stage, attempt, last failure and the trainer heartbeat', async () => {
    const [a] = await runningActivities(describeResponse(), converter);
    assert.equal(a.name, 'stage-2');
    assert.equal(a.type, 'trainStage');
    assert.equal(a.attempt, 3);
    assert.equal(a.state, 'started');
    assert.equal(a.taskQueue, 'pift-gpu');
    assert.deepEqual(a.lastFailure, { type: 'TrainerCrashed', message: 'trainer exited with code -9' });
    assert.deepEqual(a.details, { name: 'stage-2', step: 40, totalSteps: 120, loss: 1.23456, pid: 77 });

    const text = formatStatus({
      runId: 'r1',
      uiLink: 'http://ui/r1',
      progress: progressWith({ activities: [a], training: { 'stage-2': a.details as never } }),
      unpolled: [{ queue: 'pift-gpu', kind: 'gpu' }],
    });
    assert.match(text, /^run r1: RUNNING$/m);
    assert.match(
      text,
      /running: stage-2 \(trainStage on pift-gpu, started\), attempt 3\/20 \| trainer step 40\/120 loss 1\.235/,
    );
    assert.match(text, /last failure: TrainerCrashed: trainer exited with code -9/);
    assert.match(text, /no worker is polling pift-gpu: start one with npm run worker:gpu$/m);
    assert.doesNotMatch(text, /next:/, 'a running run needs no hint');
  });

  it('names an activity of an older run (numeric id) by its trainer heartbeat, else by its type', async () => {
    const raw = describeResponse();
    raw.pendingActivities![0].activityId = '7';
    raw.pendingActivities!.push({ activityId: '3', activityType: { name: 'scoreDifficulty' }, attempt: 1 });
    const [train, score] = await runningActivities(raw, converter);
    assert.equal(train.name, 'stage-2');
    assert.equal(score.name, 'scoreDifficulty');
    assert.equal(score.details, undefined);
    assert.equal(score.lastFailure, undefined);
  });

  /** A failed run as the client sees it: WorkflowFailedError → ActivityFailure → ApplicationFailure. */
  const failedRun = (cause: ApplicationFailure) =>
    new WorkflowFailedError(
      'Workflow execution failed',
      new ActivityFailure(
        'Activity task failed',
        'scoreDifficulty',
        'score',
        RetryState.NON_RETRYABLE_FAILURE,
        'w',
        cause,
      ),
      RetryState.NON_RETRYABLE_FAILURE,
    );

  it('tells a bad input to start a new run, not to resume', () => {
    const failure = runFailureOf(
      failedRun(
        ApplicationFailure.create({ message: 'data.jsonl line 2: missing "output"', type: FailureType.BadInput }),
      ),
    );
    assert.deepEqual(failure, { type: 'BadInput', message: 'data.jsonl line 2: missing "output"' });
    const text = formatStatus({
      runId: 'r1',
      uiLink: 'http://ui/r1',
      progress: progressWith({ status: 'FAILED', step: 'failed' }),
      unpolled: [],
      failure,
    });
    assert.match(text, /failed: BadInput: data\.jsonl line 2: missing "output"/);
    assert.match(text, /next: fix the input and start a new run \(resume would fail the same way\)/);
    assert.doesNotMatch(text, /pift -- resume/);
  });

  it('tells a worker misconfiguration to fix the named variable, then resume', () => {
    const cause = toTemporalFailure(
      new WorkerMisconfiguredError('the LLM endpoint refused the key', 'OPENAI_API_KEY', 'GET /models'),
    ) as ApplicationFailure;
    const failure = runFailureOf(failedRun(cause));
    assert.equal(failure.type, FailureType.WorkerMisconfigured);
    assert.equal(failure.setting, 'OPENAI_API_KEY');
    assert.equal(
      failureHint('r1', failure),
      "fix the worker's environment (OPENAI_API_KEY), then resume: npm run pift -- resume r1",
    );
  });

  it('suggests resume for other failures, decided by type and not by message', () => {
    const crash = runFailureOf(
      failedRun(ApplicationFailure.create({ message: 'BadInput: not really', type: 'Error' })),
    );
    assert.equal(failureHint('r1', crash), 'resume it with: npm run pift -- resume r1');
    const damaged = runFailureOf(
      failedRun(ApplicationFailure.create({ message: 'sha256 mismatch', type: 'CorruptArtifact', nonRetryable: true })),
    );
    assert.equal(
      failureHint('r1', damaged),
      'a stored output was damaged; resume recomputes the step that wrote it: npm run pift -- resume r1',
    );
    const s: RunStatus = {
      runId: 'r1',
      uiLink: 'http://ui/r1',
      progress: progressWith({ status: 'CANCELLED', step: 'cancelled' }),
      unpolled: [],
    };
    assert.match(formatStatus(s), /next: resume it with: npm run pift -- resume r1/);
  });

  it('names the GPU worker by its main queue while the run waits for its model check', async () => {
    const waitingForCheck = progressWith({
      step: 'validate',
      activities: [
        {
          name: 'check-model',
          type: 'checkModel',
          taskQueue: 'my-gpu-check',
          state: 'scheduled',
          attempt: 1,
          maximumAttempts: 3,
        },
      ],
    });
    // No client call is needed when the progress says which queue the run uses; a started-input lookup that fails
    // falls back to the deployment default.
    const queues = await neededQueues({} as never, 'r1', 'my-gpu', waitingForCheck);
    assert.deepEqual(queues, [
      { queue: 'pift-cpu', kind: 'cpu' },
      { queue: 'my-gpu', kind: 'gpu' },
    ]);
  });

  it('tells a worker busy with this run or another (its activity heartbeats) from an absent one', async () => {
    const gpu = { queue: 'pift-gpu', kind: 'gpu' as const };
    const now = Date.now();
    // Running runs as the server lists and describes them: `trains` trains on pift-gpu, its last heartbeat so long ago.
    const clientWith = (trains: string, secondsAgo: number) => {
      const raw = describeResponse();
      raw.pendingActivities![0].lastHeartbeatTime = msNumberToTs(now - secondsAgo * 1000);
      return {
        options: { loadedDataConverter: converter },
        workflow: {
          async *list() {
            yield* ['r1', 'other'].map((workflowId) => ({ workflowId, taskQueue: 'pift-cpu' }));
          },
          getHandle: (id: string) => ({ describe: async () => ({ raw: id === trains ? raw : {} }) }),
        },
      } as unknown as Client;
    };
    assert.deepEqual(await busyWorkers(clientWith('r1', 10), 'r1', [gpu], now), [gpu]);
    assert.deepEqual(await busyWorkers(clientWith('other', 10), 'r1', [gpu], now), [{ ...gpu, by: 'other' }]);
    // Its heartbeats stopped minutes ago: that worker is gone.
    assert.deepEqual(await busyWorkers(clientWith('other', 600), 'r1', [gpu], now), []);
    const status = (busy: RunStatus['busy']) =>
      formatStatus({ runId: 'r1', uiLink: 'u', progress: progressWith({}), unpolled: [], busy });
    assert.match(status([gpu]), /^busy: every worker slot on pift-gpu is taken by this run's running work$/m);
    const text = status([{ ...gpu, by: 'other' }]);
    assert.match(text, /^busy: every worker slot on pift-gpu is taken by run other's running work$/m);
    assert.doesNotMatch(text, /no worker is polling/);
  });

  it('names the variable that points a worker at a queue other than the usual one', () => {
    const text = formatStatus({
      runId: 'r1',
      uiLink: 'u',
      progress: progressWith({}),
      unpolled: [
        { queue: 'pift-cpu', kind: 'cpu' },
        { queue: 'my-gpu', kind: 'gpu' },
      ],
    });
    assert.match(text, /^warning: no worker is polling pift-cpu: start one with npm run worker:cpu$/m);
    assert.match(
      text,
      /^warning: no worker is polling my-gpu: start one with npm run worker:gpu and PIFT_GPU_TASK_QUEUE=my-gpu$/m,
    );
  });

  it('an export-only run needs no GPU queue', async () => {
    const input = { dataset: 'd.jsonl', training: { mode: 'export-only' } };
    const client = {
      options: { namespace: 'default', loadedDataConverter: converter },
      workflowService: {
        getWorkflowExecutionHistory: async () => ({
          history: {
            events: [
              {
                workflowExecutionStartedEventAttributes: {
                  input: { payloads: [defaultPayloadConverter.toPayload(input)] },
                },
              },
            ],
          },
        }),
      },
    };
    const queues = await neededQueues(client as never, 'r1', 'pift-gpu', progressWith({}));
    assert.deepEqual(queues, [{ queue: 'pift-cpu', kind: 'cpu' }]);
  });

  it('a closed run shows where it stopped, not a running line', () => {
    const text = formatStatus({
      runId: 'r1',
      uiLink: 'u',
      progress: progressWith({ status: 'CANCELLED', step: 'cancelled' }),
      unpolled: [],
    });
    assert.match(text, /^stopped at: cancelled$/m);
    assert.doesNotMatch(text, /stage-2 \(2\/3\)/);
  });

  it('lists a failed run by the activity whose failure ended it, else as failed in validate', async () => {
    const clientFailingWith = (err: Error) =>
      ({ workflow: { getHandle: () => ({ result: () => Promise.reject(err) }) } }) as unknown as Client;
    const scoring = failedRun(ApplicationFailure.create({ message: 'endpoint refused', type: 'WorkerMisconfigured' }));
    assert.equal(await failedStep(clientFailingWith(scoring), 'r1'), 'score');
    const invalid = new WorkflowFailedError(
      'Workflow execution failed',
      ApplicationFailure.create({ message: 'input.stages.count: must be >= 1', type: FailureType.BadInput }),
      RetryState.NON_RETRYABLE_FAILURE,
    );
    assert.equal(await failedStep(clientFailingWith(invalid), 'r1'), 'validate');
  });

  it('unparseable scores suggest another model or a wider limit, not resume', () => {
    const hint = failureHint('r1', {
      type: 'UnparseableScores',
      message: '90 of 100 difficulty answers could not be parsed',
    });
    assert.match(hint, /another model \(input\.scorer\.model\)/);
    assert.match(hint, /input\.scorer\.maxFailedFraction/);
    assert.doesNotMatch(hint, /resume/);
  });
});
