import type { Connection } from '@temporalio/client';
import type { WorkerDeploymentVersion } from '@temporalio/common';
import type { WorkerDeploymentOptions } from '@temporalio/worker';
import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * The CPU worker's Worker Deployment Version: PIFT_DEPLOYMENT_NAME (default "pift") and PIFT_BUILD_ID, by default the
 * first 16 hex digits of the workflow bundle's sha256, so a change of workflow code is a new version by itself and an
 * unchanged one joins the version already running.
 */
export function workerVersion(env: NodeJS.ProcessEnv, workflowCode: string): WorkerDeploymentVersion {
  const buildId = env.PIFT_BUILD_ID?.trim() || createHash('sha256').update(workflowCode).digest('hex').slice(0, 16);
  return { deploymentName: env.PIFT_DEPLOYMENT_NAME?.trim() || 'pift', buildId };
}

/**
 * Pinned: a run stays on the build it started on until it closes, so a new build never replays an old run and the
 * workflow code needs no `patched()` branches for changes (docs/worker-versions.md).
 */
export const pinnedDeployment = (version: WorkerDeploymentVersion): WorkerDeploymentOptions => ({
  version,
  useWorkerVersioning: true,
  defaultVersioningBehavior: 'PINNED',
});

/**
 * Makes `version` the deployment's current version, so new runs start on it. The server knows a version only once
 * one of its workers has polled, so this retries until then (up to `waitMs`). Where a release process sets the
 * current version (`temporal worker deployment set-current-version`, or a ramp), PIFT_SET_CURRENT_VERSION=0 turns
 * this off.
 */
export async function makeCurrentVersion(
  connection: Connection,
  namespace: string,
  version: WorkerDeploymentVersion,
  waitMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const { workerDeploymentInfo } = await connection.workflowService.describeWorkerDeployment({
        namespace,
        deploymentName: version.deploymentName,
      });
      if (workerDeploymentInfo?.routingConfig?.currentDeploymentVersion?.buildId === version.buildId) return;
      await connection.workflowService.setWorkerDeploymentCurrentVersion({
        namespace,
        deploymentName: version.deploymentName,
        buildId: version.buildId,
        identity: `pift cpu worker ${version.buildId}`,
      });
      return;
    } catch (err) {
      // NOT_FOUND until the version's first poll reaches the server.
      if (Date.now() > deadline) {
        throw new Error(
          `could not make ${version.deploymentName}/${version.buildId} the current version within ${waitMs / 1000} s: ${err}`,
          { cause: err },
        );
      }
      await delay(250);
    }
  }
}
