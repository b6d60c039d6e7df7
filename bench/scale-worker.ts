// The CPU worker process of `npm run bench:scale`: the real CPU activities and worker options, compiled to JavaScript
// (no TypeScript compiler in the process, as with `npm run worker:cpu`), with the bench workflow bundled beforehand.
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { depsFromEnv } from '../activities';
import { createCpuWorker } from '../workers/create-workers';

async function main() {
  const [address, namespace, taskQueue, bundlePath] = process.argv.slice(2);
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const connection = await NativeConnection.connect({ address });
  const worker = await createCpuWorker({
    connection,
    namespace,
    taskQueue,
    deps: depsFromEnv(),
    workflowBundle: { codePath: bundlePath },
  });
  process.once('SIGTERM', () => worker.shutdown());
  const running = worker.run();
  console.log('ready');
  await running;
  await connection.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
