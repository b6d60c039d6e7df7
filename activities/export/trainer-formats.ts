/**
 * What LLaMA-Factory and axolotl read, written from the stage files, so that a user can score and segment here and
 * train each stage with the tool they already use. Field names follow those tools' documentation:
 * - LLaMA-Factory `data/README.md`: `dataset_info.json` maps a dataset name to `file_name`, `formatting`
 *   (`alpaca` | `sharegpt`), `columns` (alpaca: `prompt`, `query`, `response`; sharegpt: `messages`, `system`) and,
 *   for sharegpt, `tags` (`role_tag`, `content_tag`, `user_tag`, `assistant_tag`, `system_tag`); a leading message
 *   whose role is `system_tag` is taken as the system prompt.
 * - axolotl `docs/dataset-formats`: `datasets: - path, ds_type: json, type: alpaca` for instruction data and
 *   `type: chat_template` with `field_messages` and `message_property_mappings: {role, content}` for conversations.
 * Alpaca rows are written as `{instruction, input, output}` and conversations as OpenAI `{messages}`, which both
 * tools read, so each stage is one file.
 */
import { ONE_OFF, stageName } from '../../common/constants';

export type ExportLayout = 'alpaca' | 'messages';

/** One training run to export: a stage, or the One-off baseline. */
export interface ExportedSet {
  /** `stage-1`, …, `one-off` (file and dataset names derive from it). */
  name: string;
  rows: number;
  /** 1-based stage, absent for the One-off set. */
  stage?: number;
}

export const exportFileName = (name: string) => `${name}.jsonl`;
/** LLaMA-Factory dataset names: letters, digits and underscores, as its own names are. */
export const llamaFactoryName = (name: string) => `pift_${name.replace(/-/g, '_')}`;
export const axolotlConfigName = (name: string) => `axolotl-${name}.yml`;

/** LLaMA-Factory's sharegpt tags for OpenAI-style turns. */
const SHAREGPT_TAGS = {
  role_tag: 'role',
  content_tag: 'content',
  user_tag: 'user',
  assistant_tag: 'assistant',
  system_tag: 'system',
};

export function datasetInfo(layout: ExportLayout, sets: readonly ExportedSet[]): Record<string, unknown> {
  const format =
    layout === 'alpaca'
      ? { formatting: 'alpaca', columns: { prompt: 'instruction', query: 'input', response: 'output' } }
      : { formatting: 'sharegpt', columns: { messages: 'messages' }, tags: SHAREGPT_TAGS };
  return Object.fromEntries(
    sets.map((set) => [llamaFactoryName(set.name), { file_name: exportFileName(set.name), ...format }]),
  );
}

/** A YAML string: JSON's double-quoted strings are YAML's too, so every value is quoted the same way. */
const q = (s: string) => JSON.stringify(s);

/** The `datasets:` part of an axolotl config for one training run (the rest of the config is the user's). */
export function axolotlConfig(layout: ExportLayout, set: ExportedSet, of: number): string {
  const what = set.stage === undefined ? 'the One-off baseline (every staged row)' : `stage ${set.stage} of ${of}`;
  const lines = [
    `# phased-ift export: ${what}, ${set.rows} rows. Paths are relative to this folder.`,
    'datasets:',
    `  - path: ${q(exportFileName(set.name))}`,
    '    ds_type: json',
  ];
  if (layout === 'alpaca') lines.push('    type: alpaca');
  else {
    lines.push(
      '    type: chat_template',
      '    field_messages: messages',
      '    message_property_mappings:',
      '      role: role',
      '      content: content',
      '    roles_to_train: ["assistant"]',
    );
  }
  return lines.join('\n') + '\n';
}

/** The export folder's README: what is there and how to train the stages in order. */
export function exportReadme(layout: ExportLayout, sets: readonly ExportedSet[], runId: string): string {
  const stages = sets.filter((s) => s.stage !== undefined);
  const last = stageName(stages.length);
  const table = sets
    .map(
      (s) =>
        `| ${s.stage === undefined ? 'One-off' : `stage ${s.stage}`} | \`${exportFileName(s.name)}\` | ${s.rows} | ` +
        `\`${llamaFactoryName(s.name)}\` | \`${axolotlConfigName(s.name)}\` |`,
    )
    .join('\n');
  const lfSteps = stages
    .map((s, i) => {
      const from = i === 0 ? 'your/base-model' : `out/${stageName(i)}`;
      return `   ${i + 1}. stage ${s.stage}: \`dataset: ${llamaFactoryName(s.name)}\`, \`model_name_or_path: ${from}\`, \`output_dir: out/${s.name}\``;
    })
    .join('\n');
  return `# Phased IFT stages of run ${runId}

Scored and segmented by phased-ift: each stage holds rows of increasing difficulty (stage 1 the easiest), shuffled
once. ${layout === 'alpaca' ? 'Rows are Alpaca `{instruction, input, output}`.' : 'Rows are conversations, OpenAI `{messages: [{role, content}]}` (an optional system turn first).'}

| set | file | rows | LLaMA-Factory dataset | axolotl datasets snippet |
|---|---|---|---|---|
${table}

Phased IFT trains the stages **one after another**: stage *k* starts from the weights stage *k−1* ended with, with a
fresh optimizer, warmup and learning-rate schedule, and the same settings otherwise. The One-off baseline trains once on
\`${exportFileName(ONE_OFF)}\` (every staged row) for as many optimizer steps as the stages together.

## LLaMA-Factory

\`dataset_info.json\` here describes every file. Train with \`llamafactory-cli train stage.yaml\`, setting in the YAML
\`stage: sft\`, \`dataset_dir\` to this folder and, for each stage in order:

${lfSteps}

With LoRA, merge each stage's adapter into its model (\`llamafactory-cli export\`) before the next stage starts from it.
The baseline: \`dataset: ${llamaFactoryName(ONE_OFF)}\` from the base model.

## axolotl

Each \`axolotl-*.yml\` holds the \`datasets:\` part of a config for one run; add it to your config (model, epochs,
learning rate) and run \`axolotl train\` from this folder, once per stage in order, setting \`base_model\` to the previous
stage's \`output_dir\` from stage 2 on. The last stage's model (\`${last}\`) is the Phased IFT model.
`;
}
