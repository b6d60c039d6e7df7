import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'mocha';
import { exactMatchAccuracy } from '../activities/evaluate/accuracy';
import { parseBenchmark } from '../activities/datasets/parse';

const read = (...path: string[]) => readFileSync(join(__dirname, '..', ...path), 'utf8');

/**
 * Real answers of a demo run (`test/fixtures/demo-stage-1-answers.jsonl`: the tiny model after the demo's stage 1,
 * answered by `pift.generate` with the demo's settings) scored by the accuracy the evaluation stores. A regenerated
 * demo dataset changes the held-out ids and fails this test: answer the new prompts and replace the fixture.
 */
describe('exact-match accuracy on stored demo answers', () => {
  it('counts the answers of the easy family the first stage learned', async () => {
    const prompts = parseBenchmark(read('data', 'demo', 'heldout.jsonl'), 'heldout.jsonl', 'demo-heldout');
    const answers = read('test', 'fixtures', 'demo-stage-1-answers.jsonl')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { id: string; answer: string });
    assert.deepEqual(answers.map((a) => a.id).sort(), prompts.map((p) => p.id).sort());
    const byId = new Map(answers.map((a) => [a.id, a.answer]));
    const result = await exactMatchAccuracy(['stage-1'], new Map([['demo-heldout', prompts]]), async () => byId);
    const total = result!['stage-1'].total;
    assert.equal(total.checked, 96);
    assert.ok(total.correct > 0, 'the stage-1 model answers some held-out task exactly');
    const families = new Map(
      read('data', 'demo', 'heldout.jsonl')
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const r = JSON.parse(l) as { id: string; family: string };
          return [r.id, r.family];
        }),
    );
    const firstLetter = prompts.filter((p) => families.get(p.id) === 'first_letter');
    const right = firstLetter.filter((p) => byId.get(p.id) === p.reference).length;
    assert.ok(right >= firstLetter.length / 2, `first_letter: ${right}/${firstLetter.length}`);
    assert.equal(total.correct, 7);
  });
});
