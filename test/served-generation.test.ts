import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import OpenAI from 'openai';
import { CancelledFailure } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { after, before, describe, it } from 'mocha';
import type { StepManifest } from '../activities/artifacts/manifest';
import { generateKeys } from '../activities/artifacts/run-keys';
import { completeAll } from '../activities/generate/served-answers';
import type { ActivityDeps } from '../activities/deps';
import { createGpuActivities } from '../activities/gpu';
import type { GenerateInput, GenerateResult } from '../activities/types';
import { LocalStore } from '../store';
import { groupAlive, otherDtype, servedDtype } from '../activities/generate/serving-process';
import { saveTinyModel } from './helpers/tiny-model';
import { STUB_PYTHON } from './helpers/stub-trainer';

const repoRoot = resolve(__dirname, '..');
const python = process.env.PIFT_PYTHON ?? join(repoRoot, '.venv', 'bin', 'python');
const quote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

interface AnswerLine {
  id: string | number;
  answer: string;
  prompt_tokens: number;
  answer_tokens: number;
}

const byId = (lines: AnswerLine[]) => [...lines].sort((a, b) => String(a.id).localeCompare(String(b.id)));

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * The generate activity through an OpenAI-compatible server it starts (`evaluation.serving`), against
 * `pift.generate` in the worker on the same small model and prompts (Alpaca rows and a conversation): a tiny Llama
 * with seeded random weights, saved as a Hugging Face directory, whose byte-level answers run to their budget and so
 * test every token and the decoding of split characters.
 */
describe('generation through a serving endpoint', function () {
  this.timeout(5 * 60_000);
  let root: string;
  let store: LocalStore;
  let deps: ActivityDeps;
  let modelDir: string;
  let benchUri: string;
  const pgidFile = () => join(root, 'server.pgid');
  const piftServe = () =>
    `echo $$ > ${quote(pgidFile())}; {python} -m pift.serve --model {model} --port {port} --served-model-name {name}`;
  const activities = () => createGpuActivities(deps);

  const input = (runId: string, extra: Partial<GenerateInput> = {}): GenerateInput => ({
    runId,
    store: store.root,
    name: 'stage-1',
    modelUri: modelDir,
    benchmarks: [{ name: 'heldout', uri: benchUri, prompts: 8, withReferences: 0 }],
    maxLength: 80,
    progressTimeout: '2 minutes',
    ...extra,
  });
  const generate = (
    i: GenerateInput,
    env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') }),
  ) => env.run(activities().generateAnswers, i) as Promise<GenerateResult>;
  const answersOf = async (result: GenerateResult) => {
    const text = await readFile(result.answers.heldout.replace(/^file:\/\//, ''), 'utf8');
    return byId(
      text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as AnswerLine),
    );
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'pift-served-'));
    store = new LocalStore(join(root, 'store'));
    modelDir = join(root, 'model');
    await saveTinyModel(python, modelDir);
    const rows = (await readFile(join(repoRoot, 'data', 'demo', 'heldout.jsonl'), 'utf8')).trim().split('\n');
    // Six demo prompts, one with a non-ASCII input, and ids of both JSON types.
    const prompts = rows.slice(0, 6).map((line, index) => {
      const row = JSON.parse(line) as { instruction: string; input?: string };
      return { id: index % 2 ? `p${index}` : index, instruction: row.instruction, input: row.input ?? '' };
    });
    prompts.push({ id: 'unicode', instruction: 'Répète le mot.', input: 'naïve café — 日本' });
    // A conversation, prompted in the template training used (the paper's: this tokenizer has no chat template).
    const conversation = {
      id: 'chat',
      instruction: 'And now: xyz',
      input: '',
      messages: [
        { role: 'system', content: 'Copy words.' },
        { role: 'user', content: 'Copy: abc' },
        { role: 'assistant', content: 'abc' },
        { role: 'user', content: 'And now: xyz' },
      ],
    };
    benchUri = join(root, 'heldout.jsonl');
    await writeFile(benchUri, [...prompts, conversation].map((p) => JSON.stringify(p)).join('\n') + '\n');
    deps = {
      env: { ...process.env, PIFT_SERVE_COMMAND: piftServe() },
      workDir: join(root, 'work'),
      python,
      fileRoots: [root],
    };
  });

  after(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  for (const answerExtraction of [undefined, 'paper'] as const) {
    it(`answers through pift.serve equal pift.generate's (${answerExtraction ?? 'trimmed'} extraction)`, async () => {
      const extra = answerExtraction ? { answerExtraction } : {};
      const serving = { concurrency: 3, startTimeout: '2 minutes', allowOtherDtype: false };
      // Two Python processes that share nothing but the model directory they read: side by side, they take the time
      // of one start-up on two cores instead of two.
      const [inWorker, served] = await Promise.all([
        generate(input(`local-${answerExtraction}`, extra)),
        generate(input(`served-${answerExtraction}`, { ...extra, serving })),
      ]);

      assert.equal(inWorker.generatedBy, 'pift.generate');
      assert.equal(served.generatedBy, 'served');
      assert.equal(served.server, 'pift');
      // pift.serve on a CPU decodes in fp32, as pift.generate does, and says so.
      assert.equal(served.servedDtype, 'float32');
      const expected = await answersOf(inWorker);
      assert.equal(expected.length, 8);
      assert.ok(
        expected.some((a) => a.answer.length > 0),
        'the model answers something',
      );
      assert.deepEqual(await answersOf(served), expected);

      // The step's manifest says which path generated them.
      const manifestKey = generateKeys(`served-${answerExtraction}`, 'stage-1').manifest;
      const manifest = JSON.parse(await store.getText(manifestKey)) as StepManifest<GenerateResult>;
      assert.equal(manifest.result.generatedBy, 'served');
      assert.equal(manifest.result.server, 'pift');

      // The server's whole process group is gone once the step is done.
      const pgid = Number((await readFile(pgidFile(), 'utf8')).trim());
      assert.equal(groupAlive(pgid), false);
    });
  }

  // The tests below check how the step meets a server that fails; the stub trainer writes their prompts (the same
  // "prompts" mode, without importing torch), as the real one did above.

  /**
   * A stand-in server that lists the model, then meets the first completion request as told: `hang` (never answers),
   * `refuse` (HTTP 400, as vLLM answers a prompt over its maximum length) or `die` (prints and exits, as a server
   * that runs out of memory). It lists the model with `dtype` where given, as pift.serve does. The command it runs
   * under writes its process group id first.
   */
  const scriptedServer = async (behaviour: 'hang' | 'refuse' | 'die', dtype = '') => {
    const asked = join(root, `asked-${behaviour}`);
    const script = join(root, 'scripted-server.js');
    await writeFile(
      script,
      `const [port, name, asked, behaviour, dtype] = process.argv.slice(2);
require('node:http').createServer((req, res) => {
  if (req.url.startsWith('/v1/models')) {
    res.setHeader('content-type', 'application/json');
    const model = { id: name, object: 'model', owned_by: 'test', ...(dtype && { dtype }) };
    return res.end(JSON.stringify({ object: 'list', data: [model] }));
  }
  require('node:fs').writeFileSync(asked, '1');
  if (behaviour === 'refuse') {
    res.statusCode = 400;
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify({ error: { message: 'prompt longer than the maximum context length', code: 400 } }));
  }
  if (behaviour === 'die') {
    console.error('CUDA out of memory while answering');
    process.exit(1);
  }
}).listen(Number(port), '127.0.0.1');
`,
    );
    await rm(pgidFile(), { force: true });
    await rm(asked, { force: true });
    const command =
      `echo $$ > ${quote(pgidFile())}; ` +
      `${quote(process.execPath)} ${quote(script)} {port} {name} ${quote(asked)} ${behaviour} ${quote(dtype)}`;
    return { asked, env: { ...deps.env, PIFT_SERVE_COMMAND: command } };
  };
  const serving = { concurrency: 2, startTimeout: '1 minute', allowOtherDtype: false };

  it("kills the server's process group when the step is cancelled mid-request", async () => {
    const server = await scriptedServer('hang');
    const saved = deps;
    deps = { ...deps, python: STUB_PYTHON, env: server.env };
    try {
      const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
      const running = generate(input('cancelled', { serving }), env);
      running.catch(() => undefined);
      await waitFor('a completion request', () => existsSync(server.asked));
      const pgid = Number((await readFile(pgidFile(), 'utf8')).trim());
      assert.equal(groupAlive(pgid), true);
      env.cancel();
      await assert.rejects(running, (err) => err instanceof CancelledFailure);
      assert.equal(groupAlive(pgid), false);
    } finally {
      deps = saved;
    }
  });

  it('a prompt the server refuses fails the step naming PIFT_SERVE_COMMAND, not retried', async () => {
    const server = await scriptedServer('refuse');
    const saved = deps;
    deps = { ...deps, python: STUB_PYTHON, env: server.env };
    try {
      await assert.rejects(generate(input('refused', { serving })), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.type, 'WorkerMisconfigured');
        assert.match(err.message, /refused prompt .* \(HTTP 400: .*maximum context length/);
        assert.match(err.message, /check PIFT_SERVE_COMMAND/);
        assert.equal(err.nonRetryable, true);
        return true;
      });
      assert.equal(groupAlive(Number((await readFile(pgidFile(), 'utf8')).trim())), false);
    } finally {
      deps = saved;
    }
  });

  it('a server that dies while answering fails the step (retryably) with its last words', async () => {
    const server = await scriptedServer('die');
    const saved = deps;
    deps = { ...deps, python: STUB_PYTHON, env: server.env };
    try {
      await assert.rejects(generate(input('died', { serving })), (err: unknown) => {
        assert.ok(err instanceof Error && !(err instanceof ApplicationFailure && err.nonRetryable));
        assert.match(err.message, /exited while answering/);
        assert.match(err.message, /CUDA out of memory while answering/);
        return true;
      });
      assert.equal(groupAlive(Number((await readFile(pgidFile(), 'utf8')).trim())), false);
    } finally {
      deps = saved;
    }
  });

  it("refuses a server that lists another dtype than pift.generate's, unless the input allows it", async () => {
    const server = await scriptedServer('refuse', 'bfloat16');
    const saved = deps;
    deps = { ...deps, python: STUB_PYTHON, env: server.env };
    try {
      // The stub trainer says pift.generate decodes in float32 here, as the real one does on a CPU.
      await assert.rejects(generate(input('other-dtype', { serving })), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.type, 'WorkerMisconfigured');
        assert.equal(err.nonRetryable, true);
        assert.match(err.message, /decodes in bfloat16, pift\.generate in float32/);
        assert.match(
          err.message,
          /give PIFT_SERVE_COMMAND --dtype float32, or set evaluation\.serving\.allowOtherDtype/,
        );
        return true;
      });
      assert.equal(existsSync(server.asked), false, 'no prompt was sent');
      assert.equal(groupAlive(Number((await readFile(pgidFile(), 'utf8')).trim())), false);
      // Allowed, the same server is asked (and here refuses the prompt, which ends the step).
      const allowed = { ...serving, allowOtherDtype: true };
      await assert.rejects(generate(input('other-dtype-allowed', { serving: allowed })), /refused prompt/);
      assert.equal(existsSync(server.asked), true);
    } finally {
      deps = saved;
    }
  });

  it('retries, naming PIFT_SERVE_COMMAND and the start timeout, a server that never becomes healthy', async () => {
    await rm(pgidFile(), { force: true });
    const saved = deps;
    deps = {
      ...deps,
      python: STUB_PYTHON,
      env: { ...deps.env, PIFT_SERVE_COMMAND: `echo $$ > ${quote(pgidFile())}; sleep 600` },
    };
    try {
      await assert.rejects(
        generate(
          input('never-healthy', { serving: { concurrency: 1, startTimeout: '2 seconds', allowOtherDtype: false } }),
        ),
        (err: unknown) => {
          // A loaded host may only be slow: a blip the activity's retries wait out, not a misconfiguration.
          assert.ok(err instanceof ApplicationFailure);
          assert.equal(err.type, 'TransientInfra');
          assert.equal(err.nonRetryable, false);
          assert.match(err.message, /PIFT_SERVE_COMMAND/);
          assert.match(err.message, /evaluation\.serving\.startTimeout \(2 seconds\)/);
          assert.match(err.message, /GET http:\/\/127\.0\.0\.1:\d+\/v1\/models/);
          return true;
        },
      );
      // `sleep`, a child of the command's shell, went with the group.
      const pgid = Number((await readFile(pgidFile(), 'utf8')).trim());
      assert.equal(groupAlive(pgid), false);
    } finally {
      deps = saved;
    }
  });

  it('fails naming PIFT_SERVE_COMMAND, with what it said, when the server exits before serving', async () => {
    const saved = deps;
    deps = {
      ...deps,
      python: STUB_PYTHON,
      env: { ...deps.env, PIFT_SERVE_COMMAND: 'echo "api_key=sk-verysecret" >&2; echo "no such model" >&2; exit 3' },
    };
    try {
      await assert.rejects(
        generate(input('exits', { serving: { concurrency: 1, startTimeout: '1 minute', allowOtherDtype: false } })),
        (err: unknown) => {
          assert.ok(err instanceof ApplicationFailure);
          assert.equal(err.type, 'WorkerMisconfigured');
          assert.match(err.message, /PIFT_SERVE_COMMAND\) exited with code 3/);
          assert.match(err.message, /no such model/);
          // Neither a key the server printed nor the command (which may hold one) reaches the failure.
          assert.doesNotMatch(JSON.stringify([err.message, err.details]), /verysecret/);
          assert.deepEqual(err.details, [
            { setting: 'PIFT_SERVE_COMMAND', tried: 'the command in PIFT_SERVE_COMMAND' },
          ]);
          return true;
        },
      );
    } finally {
      deps = saved;
    }
  });

  it('a retried attempt asks only the prompts its completions file lacks, dropping a torn last line', async () => {
    const asked: unknown[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        const request = JSON.parse(body) as { prompt: number[]; max_tokens: number };
        asked.push(request.prompt);
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            id: 'c',
            object: 'text_completion',
            created: 0,
            model: 'm',
            choices: [
              { index: 0, text: `answer ${request.prompt.join(',')}`, finish_reason: 'length', logprobs: null },
            ],
            usage: { prompt_tokens: request.prompt.length, completion_tokens: request.max_tokens, total_tokens: 0 },
          }),
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const file = join(root, 'resumed.completions.jsonl');
      const line = (id: string | number) =>
        JSON.stringify({ id, text: 'kept', completion_tokens: 1, finish_reason: 'stop' }) + '\n';
      await writeFile(file, line(1) + line('two') + '{"id": 3, "te');
      const prompts = [1, 'two', 3, 4].map((id, i) => ({ id, prompt: [i + 1], max_tokens: 5 }));
      const progress: number[] = [];
      await completeAll({
        client: new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 }),
        model: 'm',
        prompts,
        completionsFile: file,
        concurrency: 2,
        signal: new AbortController().signal,
        onDone: (done) => progress.push(done),
        failure: (_id, err) => err as Error,
      });
      assert.deepEqual(asked.sort(), [[3], [4]]);
      assert.deepEqual(progress, [2, 3, 4]);
      const records = (await readFile(file, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { id: unknown });
      assert.deepEqual(records.map((r) => r.id).sort(), [1, 3, 4, 'two']);
    } finally {
      server.close();
    }
  });

  it('fails naming PIFT_SERVE_COMMAND when the worker has none', async () => {
    const saved = deps;
    const env = { ...deps.env };
    delete env.PIFT_SERVE_COMMAND;
    deps = { ...deps, python: STUB_PYTHON, env };
    try {
      await assert.rejects(
        generate(
          input('no-command', { serving: { concurrency: 1, startTimeout: '1 minute', allowOtherDtype: false } }),
        ),
        (err: unknown) => {
          assert.ok(err instanceof ApplicationFailure);
          assert.equal(err.type, 'WorkerMisconfigured');
          assert.match(err.message, /evaluation\.serving is set but the GPU worker has no PIFT_SERVE_COMMAND/);
          return true;
        },
      );
    } finally {
      deps = saved;
    }
  });
});

describe('the served dtype', () => {
  it("is read from the listing, else from the server's log, else from --dtype, else said to be unknown", () => {
    assert.equal(servedDtype('torch.float32', [], ''), 'float32');
    const vllmLog = ['INFO config.py: Downcasting torch.float32 to torch.bfloat16.'];
    assert.equal(
      servedDtype(undefined, vllmLog, 'vllm serve {model}'),
      "bfloat16 (the server's log: downcast from float32)",
    );
    assert.equal(
      servedDtype(undefined, [], 'python -m vllm.entrypoints.openai.api_server --model {model} --dtype float32'),
      'float32 (PIFT_SERVE_COMMAND --dtype)',
    );
    assert.match(servedDtype(undefined, [], 'some-server {model}'), /^unknown .*--dtype/);
  });

  it('is another than the wanted one only where it names a precision', () => {
    assert.equal(otherDtype("bfloat16 (the server's log: downcast from float32)", 'float32'), true);
    assert.equal(otherDtype('float (PIFT_SERVE_COMMAND --dtype)', 'float32'), false);
    assert.equal(otherDtype('half (PIFT_SERVE_COMMAND --dtype)', 'bfloat16'), true);
    assert.equal(otherDtype('auto (PIFT_SERVE_COMMAND --dtype)', 'float32'), false);
    assert.equal(otherDtype('unknown (the server does not say)', 'float32'), false);
  });
});
