import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { TEMP_SUFFIX } from './keys';

/**
 * Runs `write` against a temporary sibling of `target`, flushes it to disk and renames it into place, so a reader
 * (or a process restarted after a crash) sees the old file or the complete new one, never a torn one. The temporary
 * name ends in TEMP_SUFFIX, which `list` skips and no key may use.
 */
export async function writeFileAtomically(target: string, write: (tmpPath: string) => Promise<void>): Promise<void> {
  await fs.mkdir(path.dirname(target), { recursive: true });
  const tmpPath = path.join(
    path.dirname(target),
    `.${path.basename(target)}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`,
  );
  try {
    await write(tmpPath);
    const handle = await fs.open(tmpPath, 'r+');
    try {
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmpPath, target);
  } catch (err) {
    await fs.rm(tmpPath, { force: true });
    throw err;
  }
}
