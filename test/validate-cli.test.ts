import assert from 'node:assert/strict';
import { WorkflowNotFoundError } from '@temporalio/client';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { describe, it } from 'mocha';
import { repoRoot, sharedTemporal } from './helpers/temporal';
import { readAlpaca } from './helpers/read-text';
import { describeEstimate } from '../activities/llm/cost-estimate';
import { estimateScoring } from './helpers/scoring-estimate';
import { SCORE_DECODING, scoreMessagesFor } from '../activities/score/score-prompt';
import { buildInput } from '../client/input-file';
import { validateInput, type Validation } from '../client/validate-input';
import { InvalidDataError, WorkerMisconfiguredError } from '../common/failures';
import { startFakeOpenAI } from './helpers/fake-openai';

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'pift-validate-test-')));
const demo = (file: string) => join(repoRoot, 'data', 'demo', file);
/** The command line's own allowed folders: the test's folder (its store) and the demo data. */
const roots = { PIFT_FILE_ROOTS: [dir, join(repoRoot, 'data')].join(delimiter) };
/** Beside the allowed folders, not in them. */
const outside = realpathSync(mkdtempSync(join(tmpdir(), 'pift-validate-outside-')));
writeFileSync(join(outside, 'train.jsonl'), '{"instruction":"a","output":"b"}\n');

/** The demo's input (scripts/demo.ts), with a store of its own. */
const demoInput = () => ({
  dataset: demo('train.jsonl'),
  runId: `validate-${randomUUID()}`,
  store: join(dir, 'store'),
  training: { epochs: 6, saveSteps: 25 },
  evaluation: { benchmarks: [{ name: 'demo-heldout', uri: demo('heldout.jsonl') }], maxNewTokens: 32 },
});

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The real command line in a child process, so the exit status is the one a user sees. */
function pift(args: string[], env: NodeJS.ProcessEnv = roots): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['-r', 'ts-node/register', join(repoRoot, 'client', 'cli.ts'), ...args],
      { cwd: repoRoot, env: { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true', ...env }, timeout: 100_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

function inputFile(input: unknown): string {
  const file = join(dir, `${randomUUID()}.json`);
  writeFileSync(file, JSON.stringify(input));
  return file;
}

async function expectInvalid(
  input: unknown,
  field: string,
  also?: RegExp,
  env: NodeJS.ProcessEnv = roots,
): Promise<CliResult> {
  const r = await pift(['validate', '--input', inputFile(input)], env);
  assert.equal(r.code, 2, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(`invalid: ${field.replace(/[.[\]]/g, '\\$&')}\\b`));
  if (also) assert.match(r.stderr, also);
  return r;
}

/**
 * What a command checks, in this process: the calls its action makes (client/cli.ts), `buildInput` on the input file
 * and then `validateInput`, `full` for `pift validate` and `before-start` for `pift run`. Each child process of the
 * command line costs seconds of ts-node start-up, so the tests above run it where the exit status or the printed
 * lines are what they check, and these cover each input the commands refuse or accept.
 */
async function validateHere(
  input: unknown,
  env: NodeJS.ProcessEnv = roots,
  mode: 'full' | 'before-start' = 'full',
): Promise<Validation> {
  const built = buildInput({ input: inputFile(input) });
  return validateInput(built, built.runId ?? 'pift-validate', { env: { ...process.env, ...env }, mode });
}

/** The refusal the command line prints as `invalid: <message>` and exits 2 for, with the field first. */
async function expectRefused(
  input: unknown,
  field: string,
  also?: RegExp,
  env: NodeJS.ProcessEnv = roots,
  mode: 'full' | 'before-start' = 'full',
): Promise<string> {
  const err = await validateHere(input, env, mode).then(
    () => assert.fail(`${field}: the input passed`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof InvalidDataError || err instanceof WorkerMisconfiguredError, String(err));
  assert.match(err.message, new RegExp(`^${field.replace(/[.[\]]/g, '\\$&')}\\b`));
  if (also) assert.match(err.message, also);
  return err.message;
}

describe('pift validate', function () {
  this.timeout(120_000);

  it('exits 0 on the demo input and lists what it checked', async () => {
    const r = await pift(['validate', '--input', inputFile(demoInput())]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ok +input\.store: .* takes writes/);
    assert.match(r.stdout, /ok +input\.dataset: .*train\.jsonl exists/);
    assert.match(r.stdout, /ok +input\.evaluation\.benchmarks\[0\]\.uri: .*heldout\.jsonl exists/);
    assert.match(r.stdout, /ok +input\.training\.baseModel: the trainer loads its config and tokenizer/);
    assert.match(r.stdout, new RegExp(`ok +PIFT_FILE_ROOTS: local locations are under ${dir}${delimiter}`));
    assert.match(r.stdout, /input is valid/);
  });

  it('exits 2 naming input.store for a gs:// store', () =>
    expectInvalid({ ...demoInput(), store: 'gs://bucket/runs' }, 'input.store', /gs:\/\/bucket/));

  it('refuses a dataset or benchmark outside the allowed folders, naming the field and the folders', async () => {
    const cases = [
      [{ ...demoInput(), dataset: join(outside, 'train.jsonl') }, 'input.dataset'],
      [
        { ...demoInput(), evaluation: { benchmarks: [{ name: 'b', uri: `file://${join(outside, 'train.jsonl')}` }] } },
        'input.evaluation.benchmarks[0].uri',
      ],
    ] as const;
    for (const [input, field] of cases) {
      const message = await expectRefused(input, field, /is outside the local folders .*PIFT_FILE_ROOTS=/);
      assert.ok(message.includes(roots.PIFT_FILE_ROOTS), message);
    }
  });

  it('applies the default folders when PIFT_FILE_ROOTS is not set: a store outside them is refused', async () => {
    const message = await expectRefused(demoInput(), 'input.store', /is outside/, { PIFT_FILE_ROOTS: undefined });
    assert.ok(message.includes(join(repoRoot, 'data')), message);
    // A run that names no store uses the default one, which is always allowed.
    const { store: _, ...noStore } = demoInput();
    const ok = await validateHere(noStore, { PIFT_FILE_ROOTS: undefined, PIFT_STORE: '' });
    const fileRoots = ok.checks.find((c) => c.field === 'PIFT_FILE_ROOTS');
    assert.match(fileRoots?.checked ?? '', /\(the default folders here/);
  });

  it('says the same about every model location outside the allowed folders', async () => {
    mkdirSync(join(outside, 'model'), { recursive: true });
    writeFileSync(join(outside, 'model', 'config.json'), '{}');
    const models = [join(outside, 'model'), join(outside, 'train.jsonl'), join(outside, 'missing')];
    const messages = new Set<string>();
    for (const model of models) {
      const message = await expectRefused(
        { ...demoInput(), training: { baseModel: model } },
        'input.training.baseModel',
        /is outside the local folders/,
      );
      messages.add(message.replaceAll(model, 'MODEL'));
    }
    assert.equal(messages.size, 1, [...messages].join('\n'));
  });

  it('shows what scoring and judging will cost, and refuses an estimate over a limit', async () => {
    const llm = await startFakeOpenAI({ apiKey: 'sk-validate' });
    try {
      const env = { ...roots, PIFT_OPENAI_BASE_URL: llm.baseURL, PIFT_OPENAI_API_KEY: 'sk-validate' };
      const price = { input: 10, output: 30 };
      const input = demoInput();
      const priced = {
        ...input,
        scorer: { kind: 'openai', pricePerMillionTokens: price },
        evaluation: { ...input.evaluation, judge: 'openai', pricePerMillionTokens: price },
      };
      const rows = await readAlpaca(readFileSync(demo('train.jsonl'), 'utf8'), 'train.jsonl');
      const e = estimateScoring(rows.map(scoreMessagesFor), {
        samples: 1,
        price,
        parseRetries: 2,
        maxTokens: SCORE_DECODING.max_tokens,
      });
      const { checks } = await validateHere(priced, env);
      const checked = (field: string) => checks.find((c) => c.field === field)?.checked ?? '';
      assert.equal(checked('input.scorer cost'), describeEstimate(e));
      // 96 held-out prompts x 3 stages x 2 orders, answers counted at maxNewTokens.
      assert.match(
        checked('input.evaluation cost'),
        /^576 requests, ~\d+ prompt \+ at most 147456 answer tokens \(approximate: 4 characters a token\); about \$\d+\.\d\d; 96 prompts x 3 candidate models x 2 orders; answers not generated yet, each counted at maxNewTokens \(32\) tokens/,
      );
      await expectRefused(
        { ...priced, scorer: { ...priced.scorer, maxCostUsd: e.costUsd! / 2 } },
        'input.scorer.maxCostUsd',
        /the scoring step would cost about .*nothing was sent/,
        env,
      );
      assert.equal(llm.requests.filter((q) => q.chat).length, 0);
    } finally {
      await llm.stop();
    }
  });

  it('refuses naming input.training.baseModel for a missing model directory', () =>
    expectRefused(
      { ...demoInput(), training: { baseModel: join(dir, 'no-such-model') } },
      'input.training.baseModel',
      /does not exist/,
    ));

  it('explains how to name a Hub model', () =>
    expectRefused(
      { ...demoInput(), training: { baseModel: 'meta-llama/Llama-2-7b-hf' } },
      'input.training.baseModel',
      /write hf:\/\/meta-llama\/Llama-2-7b-hf/,
    ));

  it('refuses naming input.training.maxLength for 16', () =>
    expectRefused({ ...demoInput(), training: { maxLength: 16 } }, 'input.training.maxLength', />= 32/));

  it("refuses naming input.runId for a run id with '/'", () =>
    expectRefused({ ...demoInput(), runId: 'bad/run/id' }, 'input.runId'));

  it('refuses naming an unknown field', () =>
    expectRefused({ ...demoInput(), evaluation: { judgeModell: 'gpt-4' } }, 'input.evaluation.judgeModell'));

  it('refuses naming the benchmark whose file is missing', () =>
    expectRefused(
      { ...demoInput(), evaluation: { benchmarks: [{ name: 'b', uri: demo('missing.jsonl') }] } },
      'input.evaluation.benchmarks[0].uri',
    ));

  it('names an --input file that is not JSON without echoing its text', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'pift-input-')), 'input.json');
    writeFileSync(file, '{"dataset": private-row-text}');
    assert.throws(
      () => buildInput({ input: file }),
      (err: Error) =>
        err instanceof InvalidDataError && err.message === `--input ${file}: not valid JSON (Unexpected character)`,
    );
  });
});

describe('pift run with an invalid input', function () {
  this.timeout(120_000);

  it("starts no workflow for a run id with '/' and exits 2", async () => {
    const temporal = await sharedTemporal();
    const input = { ...demoInput(), runId: 'bad/run/id' };
    const r = await pift(['run', '--input', inputFile(input), '--no-wait'], {
      ...roots,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: temporal.namespace ?? 'default',
    });
    assert.equal(r.code, 2, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /invalid: input\.runId/);
    assert.doesNotMatch(r.stdout, /started/);
    await assert.rejects(temporal.client.workflow.getHandle(input.runId).describe(), WorkflowNotFoundError);
  });

  // The check `pift run` makes before it starts anything (the case above shows that a refusal starts nothing).
  for (const [what, broken, field] of [
    ['a gs:// store', { store: 'gs://bucket/runs' }, 'input.store'],
    ['a missing dataset', { dataset: demo('missing.jsonl') }, 'input.dataset'],
    ['a dataset outside the allowed folders', { dataset: join(outside, 'train.jsonl') }, 'input.dataset'],
  ] as const) {
    it(`refuses ${what} before starting, naming ${field}`, () =>
      expectRefused({ ...demoInput(), ...broken }, field, undefined, roots, 'before-start'));
  }
});
