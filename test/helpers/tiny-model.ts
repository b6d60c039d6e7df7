import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/**
 * The builtin tiny Llama with seeded random weights, saved as a Hugging Face directory (weights, tokenizer,
 * generation config) as a stage's `final/` is: what a serving command loads. Its tokenizer has no chat template.
 */
export async function saveTinyModel(python: string, dir: string, seed = 11): Promise<void> {
  await promisify(execFile)(python, [
    '-c',
    'import sys\nfrom pift.tiny_model import build_tiny_model, build_tiny_tokenizer\n' +
      'build_tiny_model(int(sys.argv[2])).save_pretrained(sys.argv[1]); build_tiny_tokenizer().save_pretrained(sys.argv[1])',
    dir,
    String(seed),
  ]);
}
