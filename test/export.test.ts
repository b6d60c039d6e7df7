import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import Ajv from 'ajv';
import { describe, it } from 'mocha';
import { createCpuActivities } from '../activities/cpu';
import { depsFromEnv } from '../activities/deps';
import { fromJsonl } from '../activities/artifacts/jsonl';
import type { ExportResult, ScoreResult, SegmentResult } from '../activities/types';
import { resolvePipelineInput } from '../activities/validate/resolve-input';

const schemas = join(__dirname, 'fixtures', 'export-schemas');
const demoTrain = join(__dirname, '..', 'data', 'demo', 'train.jsonl');
const python = join(__dirname, '..', '.venv', 'bin', 'python');

const ajv = new Ajv({ allErrors: true });
const validator = (name: string) => ajv.compile(JSON.parse(readFileSync(join(schemas, name), 'utf8')) as object);
const datasetInfoValid = validator('llama-factory-dataset-info.schema.json');
const alpacaRowValid = validator('alpaca-row.schema.json');
const messagesRowValid = validator('messages-row.schema.json');
const axolotlValid = validator('axolotl-datasets.schema.json');

function valid(check: ReturnType<typeof ajv.compile>, value: unknown, what: string) {
  assert.ok(check(value), `${what}: ${ajv.errorsText(check.errors)}`);
}

/** YAML read by a real YAML parser (PyYAML, in the trainer's environment), as axolotl reads its config. */
const yaml = (path: string): unknown =>
  JSON.parse(
    execFileSync(python, ['-c', 'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', path], {
      encoding: 'utf8',
    }),
  );

/** Scores (offline), segments and exports a dataset with the real activities on a local store. */
async function scoreSegmentExport(dataset: string, dir: string) {
  const env = { PIFT_FILE_ROOTS: dir, PIFT_WORKDIR: join(dir, 'work') };
  const activities = createCpuActivities({ ...depsFromEnv(env), env });
  const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  const cfg = resolvePipelineInput(
    { dataset, store: join(dir, 'store'), runId: 'r', scorer: { kind: 'offline' }, training: { mode: 'export-only' } },
    'wf',
    env,
  );
  const ref = { runId: cfg.runId, store: cfg.store };
  const score: ScoreResult = await mock.run(() =>
    activities.scoreDifficulty({ ...ref, dataset, datasetFormat: cfg.datasetFormat, scorer: cfg.scorer }),
  );
  const seg: SegmentResult = await mock.run(() =>
    activities.segmentStages({ ...ref, score, stages: cfg.stages, heldoutFraction: 0, heldoutMax: 0 }),
  );
  const exported: ExportResult = await mock.run(() => activities.exportStages({ ...ref, segment: seg }));
  return { seg, exported, folder: join(dir, 'store', 'r', 'export') };
}

const storedRows = (uri: string) => fromJsonl<Record<string, unknown>>(readFileSync(fileURLToPath(uri), 'utf8'));

/** LLaMA-Factory's sharegpt reading, as its data README states it: a leading system turn, then user and assistant turns alternating. */
function alternates(messages: Array<{ role: string }>): boolean {
  const turns = messages[0]?.role === 'system' ? messages.slice(1) : messages;
  return turns.length % 2 === 0 && turns.every((m, i) => m.role === (i % 2 === 0 ? 'user' : 'assistant'));
}

function checkExport(folder: string, seg: SegmentResult, layout: 'alpaca' | 'messages') {
  const info = JSON.parse(readFileSync(join(folder, 'dataset_info.json'), 'utf8')) as Record<
    string,
    { file_name: string; formatting: string }
  >;
  valid(datasetInfoValid, info, 'dataset_info.json');
  const sets = [
    ...seg.stages.map((s) => ({ name: `stage-${s.stage}`, source: s.uri, rows: s.rows })),
    { name: 'one-off', source: seg.oneOff.uri, rows: seg.oneOff.rows },
  ];
  assert.deepEqual(
    Object.keys(info),
    sets.map((s) => `pift_${s.name.replace('-', '_')}`),
  );
  for (const set of sets) {
    const entry = info[`pift_${set.name.replace('-', '_')}`];
    assert.equal(entry.formatting, layout === 'alpaca' ? 'alpaca' : 'sharegpt');
    const rows = fromJsonl<Record<string, unknown>>(readFileSync(join(folder, entry.file_name), 'utf8'));
    assert.equal(rows.length, set.rows);
    // Same rows, same order as the stage file the pipeline trains on.
    const source = storedRows(set.source);
    for (const [i, row] of rows.entries()) {
      if (layout === 'alpaca') {
        valid(alpacaRowValid, row, `${entry.file_name} row ${i + 1}`);
        assert.deepEqual(row, { instruction: source[i].instruction, input: source[i].input, output: source[i].output });
      } else {
        valid(messagesRowValid, row, `${entry.file_name} row ${i + 1}`);
        assert.deepEqual(row.messages, source[i].messages);
        assert.ok(alternates(row.messages as Array<{ role: string }>), `${entry.file_name} row ${i + 1}`);
      }
    }
    const axolotl = yaml(join(folder, `axolotl-${set.name}.yml`)) as {
      datasets: Array<{ path: string; type: string }>;
    };
    valid(axolotlValid, axolotl, `axolotl-${set.name}.yml`);
    assert.equal(axolotl.datasets[0].path, entry.file_name);
    assert.equal(axolotl.datasets[0].type, layout === 'alpaca' ? 'alpaca' : 'chat_template');
  }
  const readme = readFileSync(join(folder, 'README.md'), 'utf8');
  for (const set of sets) assert.ok(readme.includes(`pift_${set.name.replace('-', '_')}`), set.name);
  assert.match(readme, /stage 2: `dataset: pift_stage_2`, `model_name_or_path: out\/stage-1`/);
}

describe('exports for LLaMA-Factory and axolotl', function () {
  this.timeout(60_000);

  it('the schemas refuse keys the tools do not document', () => {
    const entry = { file_name: 'a.jsonl', formatting: 'sharegpt', columns: { messages: 'messages' } };
    assert.ok(datasetInfoValid({ a: entry }));
    assert.ok(!datasetInfoValid({ a: { ...entry, tags: { roles_tag: 'role' } } }));
    assert.ok(!datasetInfoValid({ a: { ...entry, formatting: 'openai' } }));
    assert.ok(!datasetInfoValid({ a: { file_name: 'a.jsonl', columns: { prompt: 'q' }, tags: { role_tag: 'r' } } }));
    assert.ok(!axolotlValid({ datasets: [{ path: 'a.jsonl', type: 'chat_template' }] }));
    assert.ok(!axolotlValid({ datasets: [{ path: 'a.jsonl', type: 'alpaca', field_message: 'x' }] }));
    assert.ok(!messagesRowValid({ messages: [{ from: 'human', value: 'q' }] }));
  });

  it('Alpaca stages: files, dataset_info.json and axolotl snippets valid against the documented schemas', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'pift-export-')));
    const dataset = join(dir, 'train.jsonl');
    writeFileSync(dataset, readFileSync(demoTrain));
    const { seg, exported, folder } = await scoreSegmentExport(dataset, dir);
    assert.equal(exported.layout, 'alpaca');
    assert.equal(exported.files, 4 + 4 + 2); // 3 stages + one-off, their snippets, dataset_info.json, README
    assert.deepEqual(
      seg.stages.map((s) => s.rows > 0),
      [true, true, true],
    );
    checkExport(folder, seg, 'alpaca');
  });

  it('conversation stages export as OpenAI messages with sharegpt tags and chat_template', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'pift-export-')));
    const rows = fromJsonl<{ id: string; instruction: string; input: string; output: string }>(
      readFileSync(demoTrain, 'utf8'),
    );
    const chats = rows.map((r, i) => {
      const user = r.input ? `${r.instruction}\n${r.input}` : r.instruction;
      const messages = [
        ...(i % 3 === 0 ? [{ role: 'system', content: 'Answer exactly.' }] : []),
        ...(i % 5 === 0
          ? [
              { role: 'user', content: 'Ready?' },
              { role: 'assistant', content: 'Yes.' },
            ]
          : []),
        { role: 'user', content: user },
        { role: 'assistant', content: r.output },
      ];
      return JSON.stringify({ id: r.id, messages });
    });
    const dataset = join(dir, 'chat.jsonl');
    writeFileSync(dataset, chats.join('\n') + '\n');
    const { seg, exported, folder } = await scoreSegmentExport(dataset, dir);
    assert.equal(exported.layout, 'messages');
    checkExport(folder, seg, 'messages');
  });
});
