// Deals the mocha test files into groups of about equal measured time, longest first, one group per line.
// test/durations.json holds each file's seconds from a full run; a file not in it counts as a short one.
import { readdirSync, readFileSync } from 'node:fs';

const groups = Math.max(1, Number(process.argv[2] ?? 2));
const durations = JSON.parse(readFileSync('test/durations.json', 'utf8'));
const seconds = (file) => durations[file] ?? 5;
const files = readdirSync('test')
  .filter((f) => f.endsWith('.test.ts'))
  .sort((a, b) => seconds(b) - seconds(a) || a.localeCompare(b));
const dealt = Array.from({ length: groups }, () => ({ seconds: 0, files: [] }));
for (const file of files) {
  const lightest = dealt.reduce((least, g) => (g.seconds < least.seconds ? g : least));
  lightest.files.push(`test/${file}`);
  lightest.seconds += seconds(file);
}
for (const g of dealt) if (g.files.length) console.log(g.files.join(' '));
