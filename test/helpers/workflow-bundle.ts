import { bundleWorkflowCode, type WorkflowBundle } from '@temporalio/worker';

const quietLogger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } as never;

let bundle: Promise<WorkflowBundle> | undefined;

/**
 * The pipeline's workflow code, bundled once per test process: every worker and replay of the test files shares it,
 * since each bundling (webpack) costs seconds of a 2-core machine.
 */
export function workflowBundle(): Promise<WorkflowBundle> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: quietLogger });
  return bundle;
}
