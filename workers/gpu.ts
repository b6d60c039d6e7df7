/** GPU worker: `npm run worker:gpu` (one process per GPU, e.g. CUDA_VISIBLE_DEVICES=0). */
import { NativeConnection } from '@temporalio/worker';
import { depsFromEnv } from '../activities';
import { temporalConfigFromEnv } from './config';
import { createGpuWorker } from './create-workers';

async function run() {
  const cfg = temporalConfigFromEnv();
  const connection = await NativeConnection.connect({ address: cfg.address });
  try {
    const worker = await createGpuWorker({
      connection,
      namespace: cfg.namespace,
      taskQueue: cfg.gpuTaskQueue,
      deps: depsFromEnv(),
    });
    console.error(`pift gpu worker polling ${cfg.gpuTaskQueue} on ${cfg.address}`);
    await worker.run();
  } finally {
    await connection.close();
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
