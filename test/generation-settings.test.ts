import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { after, before, describe, it } from 'mocha';
import { hashInputs } from '../activities/artifacts/hashing';
import type { StepManifest } from '../activities/artifacts/manifest';
import { generateKeys } from '../activities/artifacts/run-keys';
import type { ActivityDeps } from '../activities/deps';
import { createGpuActivities } from '../activities/gpu';
import type { GenerateInput, GenerateResult } from '../activities/types';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import { LocalStore } from '../store';
import { generationSettings } from '../workflows/generation-input';
import { saveTinyModel } from './helpers/tiny-model';

const repoRoot = resolve(__dirname, '..');
const python = process.env.PIFT_PYTHON ?? join(repoRoot, '.venv', 'bin', 'python');

/** Settings that decide how a model answers travel from the run's input to `pift.generate`'s config. */
describe('generation settings reach the trainer', function () {
  this.timeout(3 * 60_000);
  let root: string;
  let store: LocalStore;
  let benchUri: string;
  let fakeLog: string;
  let fakeDeps: ActivityDeps;
  const ref = { runId: 'r', store: '.pift/store' };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'pift-gen-settings-'));
    store = new LocalStore(join(root, 'store'));
    benchUri = join(root, 'chat.jsonl');
    const conversation = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Copy: abc' },
      { role: 'assistant', content: 'abc' },
      { role: 'user', content: 'Copy: xyz' },
    ];
    await writeFile(
      benchUri,
      JSON.stringify({ id: 'c1', instruction: 'Copy: xyz', input: '', messages: conversation }) + '\n',
    );
    // A stand-in for the trainer's Python that records every config it is given and answers every prompt, in the
    // trainer's stdout protocol (schema/trainer-events.schema.json).
    fakeLog = join(root, 'configs.jsonl');
    const fake = join(root, 'fake-trainer.js');
    await writeFile(
      fake,
      `const fs = require('node:fs');
const config = JSON.parse(fs.readFileSync(process.argv[4], 'utf8'));
fs.appendFileSync(${JSON.stringify(fakeLog)}, JSON.stringify({ module: process.argv[3], config }) + '\\n');
const ids = fs.readFileSync(config.input_file, 'utf8').trim().split('\\n').map((line) => JSON.parse(line).id);
fs.writeFileSync(config.output_file, ids.map((id) => JSON.stringify({ id, answer: 'x', prompt_tokens: 1, answer_tokens: 1 }) + '\\n').join(''));
console.log(JSON.stringify({ event: 'done', total: ids.length, output_file: config.output_file }));
`,
    );
    const fakePython = join(root, 'fake-python');
    await writeFile(fakePython, `#!/bin/sh\nexec '${process.execPath}' '${fake}' "$@"\n`, { mode: 0o755 });
    await mkdir(join(root, 'model'));
    fakeDeps = { env: { ...process.env }, workDir: join(root, 'work'), python: fakePython, fileRoots: [root] };
  });

  after(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  const input = (runId: string, modelUri: string, extra: Partial<GenerateInput> = {}): GenerateInput => ({
    runId,
    store: store.root,
    name: 'stage-1',
    modelUri,
    benchmarks: [{ name: 'chat', uri: benchUri, prompts: 1, withReferences: 0 }],
    maxLength: 64,
    progressTimeout: '1 minute',
    ...extra,
  });
  const generate = (deps: ActivityDeps, i: GenerateInput) =>
    new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') }).run(
      createGpuActivities(deps).generateAnswers,
      i,
    ) as Promise<GenerateResult>;
  const configs = async () =>
    (await readFile(fakeLog, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { module: string; config: Record<string, unknown> });

  it('the workflow hands training.conversationTemplate and evaluation.serving to every generation', () => {
    const cfg = resolvePipelineInput(
      { dataset: 'data/demo/train.jsonl', training: { conversationTemplate: 'paper' }, evaluation: { serving: {} } },
      'run-1',
      {},
    );
    const settings = generationSettings(cfg, ref, []);
    assert.equal(settings.conversationTemplate, 'paper');
    assert.deepEqual(settings.serving, { concurrency: 16, startTimeout: '10 minutes', allowOtherDtype: false });

    // Unset, neither is in the activity's input, so its inputs hash is the one earlier runs recorded.
    const plain = generationSettings(resolvePipelineInput({ dataset: 'data/demo/train.jsonl' }, 'run-1', {}), ref, []);
    assert.equal('conversationTemplate' in plain, false);
    assert.equal('serving' in plain, false);
  });

  it("generateAnswers writes training.conversationTemplate into pift.generate's config, and hashes it", async () => {
    const model = join(root, 'model');
    await generate(fakeDeps, input('with-template', model, { conversationTemplate: 'paper' }));
    await generate(fakeDeps, input('without', model));
    const [withTemplate, without] = await configs();
    assert.equal(withTemplate.module, 'pift.generate');
    assert.equal(withTemplate.config.conversation_template, 'paper');
    assert.equal('conversation_template' in without.config, false);

    const hashOf = async (runId: string) =>
      (JSON.parse(await store.getText(generateKeys(runId, 'stage-1').manifest)) as StepManifest<GenerateResult>)
        .inputsHash;
    const benchmarks = [{ name: 'chat', uri: benchUri, prompts: 1 }];
    // The hash of a run that sets none of the later settings is the one it always was.
    assert.equal(await hashOf('without'), hashInputs({ modelUri: model, benchmarks, maxLength: 64 }));
    assert.notEqual(await hashOf('with-template'), await hashOf('without'));
  });

  it('the real trainer refuses conversationTemplate "model" for a model without a chat template, naming it', async () => {
    const modelDir = join(root, 'tiny');
    await saveTinyModel(python, modelDir);
    const deps: ActivityDeps = { env: { ...process.env }, workDir: join(root, 'work-real'), python, fileRoots: [root] };
    await assert.rejects(
      generate(deps, input('model-template', modelDir, { conversationTemplate: 'model' })),
      (err) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.type, 'BadInput');
        assert.match(err.message, /conversation_template/);
        return true;
      },
    );
  });
});
