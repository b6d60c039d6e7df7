import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { InvalidDataError } from '../common/failures';
import { resolvePipelineInput } from '../activities/validate/resolve-input';

const resolve = (input: unknown, workflowId = 'wf-1') =>
  resolvePipelineInput(input, workflowId, { PIFT_STORE: 's3://b/runs' });
const fails = (input: unknown, field: RegExp, workflowId?: string) =>
  assert.throws(
    () => resolve(input, workflowId),
    (err: unknown) => err instanceof InvalidDataError && field.test(err.message),
  );

describe('workflow input', () => {
  it('fills every default from just a dataset (the Web UI form)', () => {
    const cfg = resolve({ dataset: 's3://b/train.jsonl' });
    assert.equal(cfg.runId, 'wf-1');
    assert.equal(cfg.store, 's3://b/runs');
    assert.deepEqual(cfg.stages, {
      count: 3,
      rule: 'thresholds',
      thresholds: [1.5, 3.5],
      allowEmpty: false,
      seed: 3517,
    });
    assert.equal(cfg.scorer.kind, 'auto');
    assert.equal(cfg.training.epochs, 3);
    assert.equal(cfg.training.adamBeta2, 0.95);
    assert.equal(cfg.training.learningRate, 3e-3, 'the builtin tiny model gets its CPU preset');
    assert.equal(
      resolve({ dataset: 'x', training: { baseModel: '/models/llama' } }).training.learningRate,
      5e-6,
      'paper lr for real models',
    );
    assert.equal(cfg.evaluation.maxLength, 1024);
    assert.equal(cfg.baseline.mode, 'train');
  });

  it('names the field of every problem', () => {
    fails({}, /input\.dataset: is required/);
    fails('dataset', /one JSON object/);
    fails({ dataset: 'x', training: { epochs: 0 } }, /input\.training\.epochs/);
    fails({ dataset: 'x', trainnig: {} }, /input\.trainnig: is not a known setting/);
    fails({ dataset: 'x', stages: { count: 4 } }, /input\.stages\.thresholds: 4 stages need 3 thresholds/);
    fails({ dataset: 'x', stages: { thresholds: [3.5, 1.5] } }, /strictly ascending/);
    fails({ dataset: 'x', baseline: { mode: 'existing' } }, /input\.baseline\.checkpoint/);
    fails({ dataset: 'x', training: { heartbeatTimeout: 'soon' } }, /input\.training\.heartbeatTimeout/);
    const bench = (name: string) => ({ name, uri: `s3://b/${name}.jsonl` });
    fails({ dataset: 'x', evaluation: { benchmarks: [bench('vicuna'), bench('vicuna')] } }, /"vicuna" is used twice/);
  });

  it('refuses run ids that could leave the run prefix', () => {
    for (const runId of ['../x', 'a/b', '..', '.hidden', 'a..b', 'x\\y', '']) fails({ dataset: 'x', runId }, /runId/);
    fails({ dataset: 'x' }, /taken from the workflow id/, 'has/slash');
    assert.equal(resolve({ dataset: 'x', runId: 'run-2024.11_a' }).runId, 'run-2024.11_a');
  });
});
