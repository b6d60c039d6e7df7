import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'mocha';
import { settingsValidator } from '../common/settings/validator';
import { repoRoot } from './helpers/temporal';

// The README's one example input: it must stay valid as the settings change, and pass the check a user runs first.
const example = 'examples/my-run.json';

describe(`the README's example input (${example})`, () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'pift-example-')));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('matches the checked-in JSON Schema', () => {
    const schema = JSON.parse(readFileSync(join(repoRoot, 'schema/pipeline-input.schema.json'), 'utf8'));
    const validate = settingsValidator().compile(schema);
    const input = JSON.parse(readFileSync(join(repoRoot, example), 'utf8'));
    assert.ok(validate(input), JSON.stringify(validate.errors));
  });

  it('passes `pift validate --input` as the README runs it, from the repository root', async function () {
    this.timeout(300_000);
    // No LLM endpoint: scoring and judging resolve to the offline fallbacks, as on a newcomer's machine.
    const env: NodeJS.ProcessEnv = { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true' };
    for (const name of ['OPENAI_API_KEY', 'OPENAI_BASE_URL', 'PIFT_OPENAI_BASE_URL', 'PIFT_FILE_ROOTS'])
      delete env[name];
    Object.assign(env, {
      PIFT_STORE: pathToFileURL(join(dir, 'store')).href,
      PIFT_WORKDIR: join(dir, 'work'),
      PIFT_FILE_ROOTS: [join(repoRoot, 'data'), dir].join(delimiter),
    });
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        ['-r', 'ts-node/register', join(repoRoot, 'client', 'cli.ts'), 'validate', '--input', example],
        { cwd: repoRoot, env, timeout: 280_000 },
        (err, out, errOut) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout: out, stderr: errOut }),
      ),
    );
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, /benchmarks\[0\]\.uri: \S+\/data\/demo\/heldout\.jsonl exists/, 'the benchmark was checked');
    assert.match(stdout, /^input is valid$/m);
  });
});
