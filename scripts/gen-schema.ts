// `npm run schema`: writes the JSON Schema files and the settings table of docs/settings.md from common/settings/.
// test/settings-docs.test.ts fails when a checked-in copy is stale.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { generatedFiles, SETTINGS_DOC_FILE } from './settings-docs';

async function main(): Promise<void> {
  const root = join(__dirname, '..');
  const files = generatedFiles(await readFile(join(root, SETTINGS_DOC_FILE), 'utf8'));
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    const before = await readFile(join(root, path), 'utf8').catch(() => undefined);
    if (before === text) continue;
    await writeFile(join(root, path), text);
    console.log(`wrote ${path}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
