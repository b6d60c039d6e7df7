// Workers and the CLI run compiled JavaScript from lib/, so nothing is type-checked at start. This runs before them
// (npm's pre-scripts) and rebuilds lib/ only when a source is newer than its output, so a `git pull` never leaves a
// worker running stale code. Where lib/ is current it costs a directory walk.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const project = join(root, 'tsconfig.build.json');
const sourceDirs = ['common', 'store', 'workflows', 'activities', 'workers', 'client'];

function* sources(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if ((entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) || entry.name.endsWith('.json')) yield path;
  }
}

const outputOf = (source) => join(root, 'lib', relative(root, source).replace(/\.ts$/, '.js'));
const mtime = (path) => (existsSync(path) ? statSync(path).mtimeMs : -1);

const inputs = [project, join(root, 'tsconfig.json'), join(root, 'package-lock.json')];
const newestInput = Math.max(...inputs.map(mtime));
const stale = sourceDirs
  .filter((d) => existsSync(join(root, d)))
  .flatMap((d) => [...sources(join(root, d))])
  .find((source) => {
    const built = mtime(outputOf(source));
    return built < mtime(source) || built < newestInput;
  });

if (stale) {
  let tsc;
  try {
    tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  } catch {
    console.error(`lib/ is out of date (${relative(root, stale)}) and TypeScript is not installed: run npm run build`);
    process.exit(1);
  }
  // The first build compiles every source and takes a minute or two on a small machine: say so before the silence.
  console.error(
    existsSync(join(root, 'lib'))
      ? `building lib/ (${relative(root, stale)} changed)`
      : 'building lib/ for the first run: compiling the TypeScript sources takes a minute or two',
  );
  execFileSync(process.execPath, [tsc, '-p', project], { cwd: root, stdio: 'inherit' });
}
