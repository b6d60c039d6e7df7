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
import { describeEstimate, estimateScoring } from '../activities/llm/cost-estimate';
import { SCORE_DECODING, scoreMessagesFor } from '../activities/score/score-prompt';
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

  // Where a test runs the command line more than once, the runs go side by side: each is a process of its own.
  it('exits 2 for a dataset or benchmark outside the allowed folders, naming the field and the folders', async () => {
    const cases = [
      [{ ...demoInput(), dataset: join(outside, 'train.jsonl') }, 'input.dataset'],
      [
        { ...demoInput(), evaluation: { benchmarks: [{ name: 'b', uri: `file://${join(outside, 'train.jsonl')}` }] } },
        'input.evaluation.benchmarks[0].uri',
      ],
    ] as const;
    await Promise.all(
      cases.map(async ([input, field]) => {
        const r = await expectInvalid(input, field, /is outside the local folders .*PIFT_FILE_ROOTS=/);
        assert.ok(r.stderr.includes(roots.PIFT_FILE_ROOTS), r.stderr);
      }),
    );
  });

  it('applies the default folders when PIFT_FILE_ROOTS is not set: a store outside them is refused', async () => {
    // A run that names no store uses the default one, which is always allowed.
    const { store: _, ...noStore } = demoInput();
    const [r, ok] = await Promise.all([
      expectInvalid(demoInput(), 'input.store', /is outside/, { PIFT_FILE_ROOTS: undefined }),
      pift(['validate', '--input', inputFile(noStore)], { PIFT_FILE_ROOTS: undefined, PIFT_STORE: '' }),
    ]);
    assert.ok(r.stderr.includes(join(repoRoot, 'data')), r.stderr);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /ok +PIFT_FILE_ROOTS: .*\(the default folders here/);
  });

  it('says the same about every model location outside the allowed folders', async () => {
    mkdirSync(join(outside, 'model'), { recursive: true });
    writeFileSync(join(outside, 'model', 'config.json'), '{}');
    const models = [join(outside, 'model'), join(outside, 'train.jsonl'), join(outside, 'missing')];
    const messages = new Set<string>();
    await Promise.all(
      models.map(async (model) => {
        const r = await expectInvalid({ ...demoInput(), training: { baseModel: model } }, 'input.training.baseModel');
        assert.match(r.stderr, /is outside the local folders/);
        messages.add(r.stderr.replaceAll(model, 'MODEL'));
      }),
    );
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
      const r = await pift(['validate', '--input', inputFile(priced)], env);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(
        r.stdout.includes(`ok       input.scorer cost: ${describeEstimate(e)}`),
        `${describeEstimate(e)}\n${r.stdout}`,
      );
      // 96 held-out prompts x 3 stages x 2 orders, answers counted at maxNewTokens.
      assert.match(
        r.stdout,
        /ok +input\.evaluation cost: 576 requests, ~\d+ prompt \+ at most 147456 answer tokens \(approximate: 4 characters a token\); about \$\d+\.\d\d; 96 prompts x 3 candidate models x 2 orders; answers not generated yet, each counted at maxNewTokens \(32\) tokens/,
      );
      await expectInvalid(
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

  it('exits 2 naming input.store for a gs:// store', () =>
    expectInvalid({ ...demoInput(), store: 'gs://bucket/runs' }, 'input.store', /gs:\/\/bucket/));

  it('exits 2 naming input.training.baseModel for a missing model directory', () =>
    expectInvalid(
      { ...demoInput(), training: { baseModel: join(dir, 'no-such-model') } },
      'input.training.baseModel',
      /does not exist/,
    ));

  it('explains how to name a Hub model', () =>
    expectInvalid(
      { ...demoInput(), training: { baseModel: 'meta-llama/Llama-2-7b-hf' } },
      'input.training.baseModel',
      /write hf:\/\/meta-llama\/Llama-2-7b-hf/,
    ));

  it('exits 2 naming input.training.maxLength for 16', () =>
    expectInvalid({ ...demoInput(), training: { maxLength: 16 } }, 'input.training.maxLength', />= 32/));

  it("exits 2 naming input.runId for a run id with '/'", () =>
    expectInvalid({ ...demoInput(), runId: 'bad/run/id' }, 'input.runId'));

  it('exits 2 naming an unknown field', () =>
    expectInvalid({ ...demoInput(), evaluation: { judgeModell: 'gpt-4' } }, 'input.evaluation.judgeModell'));

  it('exits 2 naming the benchmark whose file is missing', () =>
    expectInvalid(
      { ...demoInput(), evaluation: { benchmarks: [{ name: 'b', uri: demo('missing.jsonl') }] } },
      'input.evaluation.benchmarks[0].uri',
    ));
});

describe('pift run with an invalid input', function () {
  this.timeout(120_000);

  for (const [what, broken, field] of [
    ["a run id with '/'", { runId: 'bad/run/id' }, 'input.runId'],
    ['a gs:// store', { store: 'gs://bucket/runs' }, 'input.store'],
    ['a missing dataset', { dataset: demo('missing.jsonl') }, 'input.dataset'],
    ['a dataset outside the allowed folders', { dataset: join(outside, 'train.jsonl') }, 'input.dataset'],
  ] as const) {
    it(`starts no workflow for ${what} and exits 2`, async () => {
      const temporal = await sharedTemporal();
      const input = { ...demoInput(), ...broken };
      const r = await pift(['run', '--input', inputFile(input), '--no-wait'], {
        ...roots,
        TEMPORAL_ADDRESS: temporal.address,
        TEMPORAL_NAMESPACE: temporal.namespace ?? 'default',
      });
      assert.equal(r.code, 2, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`invalid: ${field.replace(/\./g, '\\.')}`));
      assert.doesNotMatch(r.stdout, /started/);
      await assert.rejects(temporal.client.workflow.getHandle(input.runId).describe(), WorkflowNotFoundError);
    });
  }
});
