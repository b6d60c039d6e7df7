import { Client, WorkflowExecutionAlreadyStartedError, type WorkflowHandle } from '@temporalio/client';
import { decodeArrayFromPayloads } from '@temporalio/common/lib/internal-non-workflow';
import { CPU_TASK_QUEUE, PIFT_STEP, WORKFLOW_TYPE } from '../common/constants';
import type { PipelineInput } from '../common/settings/schema';
import { checkInputHygiene } from '../common/settings/hygiene';
import { phasedIftPipeline, type PipelineResult, type Progress } from '../workflows';

export interface StartOptions {
  /** Task queue of the CPU worker that hosts the workflow. */
  taskQueue?: string;
  /** Web UI base, for the link printed to users. */
  uiUrl?: string;
}

export interface StartedRun {
  handle: WorkflowHandle<typeof phasedIftPipeline>;
  runId: string;
  uiLink: string;
}

export const uiLink = (uiUrl: string, namespace: string, workflowId: string): string =>
  `${uiUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;

/** A fresh run id for a run started without one. */
export const newRunId = (): string => `pift-${new Date().toISOString().replace(/[:.]/g, '-').toLowerCase()}`;

/**
 * Starts a Phased IFT run. The run id is the workflow id, so one run id is one durable run: starting it again after
 * it closed re-uses every finished step. This is the function other services call.
 */
export async function startRun(client: Client, input: PipelineInput, opts: StartOptions = {}): Promise<StartedRun> {
  // Before the start: a key or an oversized input must never reach the run's history.
  checkInputHygiene(input);
  const runId = input.runId ?? newRunId();
  const handle = await client.workflow.start(phasedIftPipeline, {
    taskQueue: opts.taskQueue ?? CPU_TASK_QUEUE,
    workflowId: runId,
    args: [{ ...input, runId }],
    typedSearchAttributes: [{ key: PIFT_STEP, value: 'validate' }],
    // The run page's title line in the Web UI; the workflow's current details carry its step and, at the end, results.
    staticSummary: input.dataset ? `Phased IFT on ${input.dataset}` : 'Phased IFT',
  });
  return { handle, runId, uiLink: uiLink(opts.uiUrl ?? 'http://localhost:8233', client.options.namespace, runId) };
}

/** The input, type and task queue a run was started with, from its first history event (runs started in the Web UI too). */
export async function runStartInput(client: Client, runId: string) {
  const { history } = await client.workflowService.getWorkflowExecutionHistory({
    namespace: client.options.namespace,
    execution: { workflowId: runId },
    maximumPageSize: 1,
  });
  const started = history?.events?.[0]?.workflowExecutionStartedEventAttributes;
  const [input] = await decodeArrayFromPayloads(client.options.loadedDataConverter, started?.input?.payloads);
  if (input === undefined) throw new Error(`run ${runId} has no start input in its history`);
  const taskQueue = started?.taskQueue?.name ?? CPU_TASK_QUEUE;
  return { input: input as PipelineInput, type: started?.workflowType?.name, taskQueue };
}

/**
 * Restarts a failed, cancelled or terminated run under the same run id with the same input: finished steps return
 * their committed results at once, and the interrupted training continues from its newest stored checkpoint.
 */
export async function resumeRun(
  client: Client,
  runId: string,
  opts: StartOptions & { force?: boolean } = {},
): Promise<StartedRun> {
  const [{ input, type, taskQueue }, { status }] = await Promise.all([
    runStartInput(client, runId),
    client.workflow.getHandle(runId).describe(),
  ]);
  if (type !== WORKFLOW_TYPE) throw new Error(`${runId} is a ${type} workflow, not a ${WORKFLOW_TYPE} run`);
  if (status.name === 'RUNNING') throw new Error(`run ${runId} is still running; nothing to resume`);
  if (status.name === 'COMPLETED' && !opts.force)
    throw new Error(`run ${runId} already completed; pass --force to re-run it (finished steps are reused)`);
  try {
    return await startRun(client, { ...input, runId }, { ...opts, taskQueue: opts.taskQueue ?? taskQueue });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError)
      throw new Error(`run ${runId} was resumed by someone else meanwhile`);
    throw err;
  }
}

export type { PipelineResult, Progress };
