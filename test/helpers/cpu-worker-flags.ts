import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * The Node options `npm run worker:cpu` starts the CPU worker with (package.json's script, `node <options> <file>`),
 * so that the bench's workers and the tests start with the same ones.
 */
export function cpuWorkerNodeFlags(): string[] {
  const pkg = JSON.parse(readFileSync(resolve(__dirname, '..', '..', 'package.json'), 'utf8'));
  const [node, ...words] = String(pkg.scripts['worker:cpu']).split(/\s+/);
  if (node !== 'node') throw new Error(`package.json's worker:cpu does not start with node: ${node}`);
  return words.filter((word) => word.startsWith('--'));
}
