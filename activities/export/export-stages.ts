import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ONE_OFF, stageName } from '../../common/constants';
import { allowedLocation, openObject, openStore } from '../../store';
import type { ActivityDeps } from '../deps';
import { hashInputs } from '../artifacts/hashing';
import { streamJsonl } from '../artifacts/jsonl';
import { exportKeys } from '../artifacts/run-keys';
import { inScratch } from '../artifacts/scratch';
import { runStep, type StepOutputs } from '../artifacts/step';
import type { ExportInput, ExportResult } from '../types';
import {
  axolotlConfig,
  axolotlConfigName,
  datasetInfo,
  exportFileName,
  exportReadme,
  type ExportedSet,
  type ExportLayout,
} from './trainer-formats';

type StoredRow = { instruction: string; input: string; output: string; messages?: unknown };

/**
 * Writes each stage and the One-off set in the files LLaMA-Factory and axolotl read, with their dataset
 * descriptions and a README, under the run's `export/` folder. Rows are copied line by line through a local file.
 */
export async function exportStages(deps: ActivityDeps, input: ExportInput): Promise<ExportResult> {
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const keys = exportKeys(input.runId);
  const { segment } = input;
  const inputsHash = hashInputs({
    stages: segment.stages.map((s) => s.sha256),
    oneOff: segment.oneOff.sha256,
    format: 1,
  });
  const spec = { runId: input.runId, step: 'export', key: keys.manifest, inputsHash };
  return runStep(store, spec, (out) => writeExport(deps, input, out));
}

async function writeExport(deps: ActivityDeps, input: ExportInput, out: StepOutputs): Promise<ExportResult> {
  const keys = exportKeys(input.runId);
  const { segment } = input;
  const sources = [
    ...segment.stages.map((s) => ({ set: { name: stageName(s.stage), rows: s.rows, stage: s.stage }, uri: s.uri })),
    { set: { name: ONE_OFF, rows: segment.oneOff.rows } as ExportedSet, uri: segment.oneOff.uri },
  ];
  let layout: ExportLayout | undefined;
  await inScratch(deps.workDir, 'export-', async (scratch) => {
    for (const { set, uri } of sources) {
      const { store, key } = openObject(uri, deps.env);
      const local = join(scratch, exportFileName(set.name));
      // Alpaca rows as `{instruction, input, output}`, conversations as `{messages}` (see trainer-formats.ts).
      async function* exported() {
        for await (const { instruction, input, output, messages } of streamJsonl<StoredRow>(store, key)) {
          layout ??= messages !== undefined ? 'messages' : 'alpaca';
          yield JSON.stringify(messages !== undefined ? { messages } : { instruction, input, output }) + '\n';
        }
      }
      await pipeline(exported, createWriteStream(local));
      await out.putFile(keys.file(exportFileName(set.name)), local);
    }
  });
  layout ??= 'alpaca';
  const sets = sources.map((s) => s.set);
  await out.put(keys.file('dataset_info.json'), JSON.stringify(datasetInfo(layout, sets), null, 2) + '\n');
  for (const set of sets) {
    await out.put(keys.file(axolotlConfigName(set.name)), axolotlConfig(layout, set, segment.stages.length));
  }
  await out.put(keys.file('README.md'), exportReadme(layout, sets, input.runId));
  return { uri: out.store.uriFor(keys.dir), layout, files: out.entries.length };
}
