import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'mocha';
import {
  generatedFiles,
  SETTINGS_DOC_FILE,
  settingsTable,
  TABLE_END,
  TABLE_START,
  withSettingsTable,
} from '../scripts/settings-docs';
import { PipelineInputSchema } from '../common/settings/schema';
import { settingsValidator } from '../common/settings/validator';

const root = join(__dirname, '..');

describe('generated settings files', () => {
  it('are up to date: JSON Schemas and the table of docs/settings.md (run `npm run schema` when this fails)', async () => {
    const files = generatedFiles(await readFile(join(root, SETTINGS_DOC_FILE), 'utf8'));
    assert.deepEqual(Object.keys(files).sort(), [
      'docs/settings.md',
      'schema/pipeline-input.schema.json',
      'schema/trainer-config.schema.json',
      'schema/trainer-events.schema.json',
      'trainer/pift/configs/defaults.json',
    ]);
    for (const [path, expected] of Object.entries(files)) {
      const actual = await readFile(join(root, path), 'utf8');
      assert.ok(actual === expected, `${path} is stale: run \`npm run schema\``);
    }
  });

  it('the checked-in input schema validates and fills defaults like the one in code', async () => {
    const fromFile = JSON.parse(await readFile(join(root, 'schema/pipeline-input.schema.json'), 'utf8'));
    const viaFile = settingsValidator().compile(fromFile);
    const viaCode = settingsValidator().compile(PipelineInputSchema);
    for (const input of [
      { dataset: 's3://b/x.jsonl' },
      { dataset: 'x', training: { maxLength: 31 } },
      { dataset: 'x', training: { scheduler: 'cosine_with_min_lr' } },
      { dataset: 'x', evaluation: { benchmarks: [{ name: 'v', uri: 'file:///v.jsonl' }] } },
    ]) {
      const [a, b] = [structuredClone(input), structuredClone(input)];
      assert.equal(viaFile(a), viaCode(b), JSON.stringify(input));
      assert.deepEqual(a, b);
    }
  });

  it('the settings table has one row per setting, with its default and source', () => {
    const table = settingsTable();
    const row = (field: string) => table.split('\n').find((l) => l.startsWith(`| \`${field}\` |`));
    for (const group of ['scorer', 'stages', 'training', 'baseline', 'evaluation'] as const) {
      const keys = Object.keys(PipelineInputSchema.properties[group].properties);
      for (const key of keys) assert.ok(row(`${group}.${key}`), `no row for ${group}.${key}`);
    }
    assert.match(row('training.epochs') ?? '', /\| integer ≥ 1, ≤ 1000 \| `3` \| \[ours\] \|/);
    assert.match(row('training.maxLength') ?? '', /integer ≥ 32, ≤ 1048576 \| 2048 \(builtin tiny model: 256\) \| \[repo\]/);
    assert.match(row('gpuTaskQueue') ?? '', /PIFT_GPU_TASK_QUEUE/);
    assert.match(row('dataset') ?? '', /\| required \|/);
  });

  it('replaces only what lies between the markers, and insists on them', () => {
    const readme = `# x\n\nbefore\n${TABLE_START}\nold table\n${TABLE_END}\nafter\n`;
    assert.equal(withSettingsTable(readme, 'T'), `# x\n\nbefore\n${TABLE_START}\nT\n${TABLE_END}\nafter\n`);
    assert.throws(() => withSettingsTable('# no markers\n', 'T'), /settings-table:start/);
    assert.throws(() => withSettingsTable(`${TABLE_END}\n${TABLE_START}\n`, 'T'), /settings-table:start/);
  });
});
