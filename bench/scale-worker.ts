// The CPU worker process of `npm run bench:scale`: the real CPU activities and worker options, compiled to JavaScript
// (no TypeScript compiler in the process, as with `npm run worker:cpu`), with the bench workflow bundled beforehand.
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { depsFromEnv } from '../activities';
import { createCpuWorkers } from '../workers/create-workers';

async function main() {
  const [address, namespace, taskQueue, bundlePath] = process.argv.slice(2);
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const connection = await NativeConnection.connect({ address });
  // The shard worker too: the bench's sharded scoring sends its shards to the shard queue.
  const workers = await createCpuWorkers({
    connection,
    namespace,
    taskQueue,
    deps: depsFromEnv(),
    workflowBundle: { codePath: bundlePath },
  });
  process.once('SIGTERM', () => workers.forEach((w) => w.shutdown()));
  const running = Promise.all(workers.map((w) => w.run()));
  console.log('ready');
  await running;
  await connection.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
