/** CPU worker: `npm run worker:cpu`. Configuration comes from the environment (see README "Configuration"). */
import { NativeConnection } from '@temporalio/worker';
import { depsFromEnv } from '../activities';
import { temporalConfigFromEnv } from './config';
import { createCpuWorker } from './create-workers';
import { ensureSearchAttributes } from './search-attributes';

async function run() {
  const cfg = temporalConfigFromEnv();
  await ensureSearchAttributes(cfg.address, cfg.namespace);
  const connection = await NativeConnection.connect({ address: cfg.address });
  try {
    const worker = await createCpuWorker({
      connection,
      namespace: cfg.namespace,
      taskQueue: cfg.cpuTaskQueue,
      deps: depsFromEnv(),
    });
    console.error(`pift cpu worker polling ${cfg.cpuTaskQueue} on ${cfg.address}`);
    await worker.run();
  } finally {
    await connection.close();
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
