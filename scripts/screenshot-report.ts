/**
 * `npm run screenshot [-- path/to/report.html]`: the README's picture of a report, docs/report.png, taken in headless
 * Chromium from a run's report.html (default: the newest under .pift/store/, which `npm run demo` writes).
 * The top of the page is kept (the results and the first charts; the report draws without animation), at a size that
 * keeps the PNG small.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launchChromium } from '../test/helpers/chromium';

const root = resolve(__dirname, '..');
const out = join(root, 'docs', 'report.png');

/** The most recently written report.html of the demo's local store, if any. */
function newestReport(): string | undefined {
  const store = join(root, '.pift', 'store');
  if (!existsSync(store)) return undefined;
  return readdirSync(store)
    .map((run) => join(store, run, 'report', 'report.html'))
    .filter((file) => existsSync(file))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

async function main() {
  const report = process.argv[2] ? resolve(process.argv[2]) : newestReport();
  if (!report || !existsSync(report)) {
    throw new Error('no report.html: run `npm run demo` first, or name one: npm run screenshot -- path/to/report.html');
  }
  const chromium = await launchChromium();
  try {
    const page = await chromium.browser.newPage();
    await page.setViewport({ width: 1000, height: 1300 });
    await page.goto(pathToFileURL(report).href, { waitUntil: 'load' });
    await page.screenshot({ path: out, type: 'png', clip: { x: 0, y: 0, width: 1000, height: 1300 } });
    console.log(`wrote ${out} from ${report}`);
  } finally {
    await chromium.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
