import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'mocha';
import { exactMatchAccuracy } from '../activities/evaluate/accuracy';
import { readBenchmark } from './helpers/read-text';

const read = (...path: string[]) => readFileSync(join(__dirname, '..', ...path), 'utf8');
const lines = (text: string) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, string>);

/**
 * Real answers of a demo run (`test/fixtures/demo-stage-3-answers.jsonl`: the tiny model after the demo's last stage,
 * answered by `pift.generate` with the demo's settings, copied from the run's store) scored by the accuracy the
 * evaluation stores. A regenerated demo dataset changes the held-out ids and fails this test: run the demo again and
 * replace the fixture with the new stage-3 answers.
 */
describe('exact-match accuracy on stored demo answers', () => {
  it("counts the final stage's exact answers, most of them on the hard tasks it trained on", async () => {
    const prompts = await readBenchmark(read('data', 'demo', 'heldout.jsonl'), 'heldout.jsonl', 'demo-heldout');
    const answers = lines(read('test', 'fixtures', 'demo-stage-3-answers.jsonl'));
    assert.deepEqual(answers.map((a) => a.id).sort(), prompts.map((p) => p.id).sort());
    const byId = new Map(answers.map((a) => [a.id, a.answer]));
    const result = await exactMatchAccuracy(['stage-3'], new Map([['demo-heldout', prompts]]), async () => byId);
    const total = result!['stage-3'].total;
    assert.equal(total.checked, 96);
    assert.equal(total.correct, 32);
    assert.ok(total.accuracy >= 0.15, `stage-3 accuracy ${total.accuracy}`);

    const level = new Map(lines(read('data', 'demo', 'heldout.jsonl')).map((r) => [r.id, r.level]));
    const hard = prompts.filter((p) => level.get(p.id) === 'hard');
    const right = hard.filter((p) => byId.get(p.id) === p.reference).length;
    assert.ok(right >= hard.length / 2, `hard: ${right}/${hard.length}`);
  });
});
