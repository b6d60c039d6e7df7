import { execFile } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { onGlobalTeardown } from '../hooks';

/** One saved model per interpreter and seed in a test process: each Python start that imports torch costs seconds. */
const saved = new Map<string, Promise<string>>();

/**
 * The builtin tiny Llama with seeded random weights, saved as a Hugging Face directory (weights, tokenizer,
 * generation config) as a stage's `final/` is: what a serving command loads. Its tokenizer has no chat template.
 * Saved once by Python and copied into `dir`, which the caller may change freely.
 */
export async function saveTinyModel(python: string, dir: string, seed = 11): Promise<void> {
  const key = `${python}\0${seed}`;
  let template = saved.get(key);
  if (!template) {
    template = savedByPython(python, seed);
    saved.set(key, template);
  }
  await cp(await template, dir, { recursive: true });
}

async function savedByPython(python: string, seed: number): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'pift-tiny-model-'));
  onGlobalTeardown(() => rm(root, { recursive: true, force: true }));
  const dir = join(root, 'model');
  await promisify(execFile)(python, [
    '-c',
    'import sys\nfrom pift.tiny_model import build_tiny_model, build_tiny_tokenizer\n' +
      'build_tiny_model(int(sys.argv[2])).save_pretrained(sys.argv[1]); build_tiny_tokenizer().save_pretrained(sys.argv[1])',
    dir,
    String(seed),
  ]);
  return dir;
}
