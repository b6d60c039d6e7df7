import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'mocha';
import { DefaultLogger } from '@temporalio/worker';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { createCpuActivities } from '../activities/cpu';
import { depsFromEnv } from '../activities/deps';
import { readJsonl } from '../activities/artifacts/jsonl';
import { sha256 } from '../activities/artifacts/hashing';
import type { AlpacaRow } from '../activities/datasets/rows';
import { fileScorer, scoreValue } from '../activities/datasets/file-scores';
import type { ScoreInput, ScoreResult, SegmentResult } from '../activities/types';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import { openObject } from '../store';

const FIXTURES = join(__dirname, 'fixtures', 'released-scores');

describe('scores from a file (scorer.kind "file")', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pift-file-scores-'));
    env = { PIFT_FILE_ROOTS: dir, PIFT_WORKDIR: join(dir, 'work') };
    for (const f of ['alpaca_data.json', 'phasedsft_scores.jsonl']) copyFileSync(join(FIXTURES, f), join(dir, f));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const mock = () => new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });

  async function score(scorer: Record<string, unknown>, dataset = join(dir, 'alpaca_data.json')) {
    const cfg = resolvePipelineInput(
      { dataset, store: join(dir, 'store'), runId: `r${Math.random().toString(36).slice(2)}`, scorer },
      'wf',
      env,
    );
    const activities = createCpuActivities({ ...depsFromEnv(env), env });
    const result = (await mock().run(() =>
      activities.scoreDifficulty({ ...cfg, dataset: cfg.dataset, scorer: cfg.scorer }),
    )) as ScoreResult;
    return { cfg, activities, result };
  }

  async function fails(scorer: Record<string, unknown>, dataset?: string): Promise<ApplicationFailure> {
    try {
      await score(scorer, dataset);
    } catch (err) {
      assert.ok(err instanceof ApplicationFailure, String(err));
      return err;
    }
    throw new Error('scoring succeeded');
  }

  it('reproduces the released stage-3 membership at the 3.5 cut from the PhasedSFT format', async () => {
    const file = join(dir, 'phasedsft_scores.jsonl');
    const { cfg, activities, result } = await score({ kind: 'file', files: [file] });
    assert.equal(result.failed, 0);
    assert.equal(result.scored, 24);
    const fileSha = sha256(readFileSync(file));
    assert.equal(result.scorer, `file:phasedsft_scores.jsonl@sha256:${fileSha}`);
    const scores = openObject(result.scoresUri, env);
    const byId = new Map(
      (await readJsonl<{ id: string; score: number }>(scores.store, scores.key)).map((s) => [s.id, s.score]),
    );
    // Scores with more than two decimals and with trailing line breaks are read as they are.
    assert.equal(byId.get('I12'), 4.166666666666667);
    assert.equal(byId.get('I16'), 4.34375);
    assert.equal(byId.get('I14'), 4);
    assert.equal(byId.get('I5'), 3.4999999);

    const seg = (await mock().run(() =>
      activities.segmentStages({
        runId: cfg.runId,
        store: cfg.store,
        score: result,
        stages: cfg.stages,
        heldoutFraction: 0,
        heldoutMax: 1,
      }),
    )) as SegmentResult;
    const stage3 = openObject(seg.stages[2].uri, env);
    const ids = (await readJsonl<{ id: string }>(stage3.store, stage3.key)).map((r) => r.id).sort();
    assert.deepEqual(ids, ['I12', 'I14', 'I16', 'I17', 'I20', 'I22', 'I6', 'I7']);
    assert.equal(seg.stages[2].minScore, 3.5);
    assert.deepEqual(
      seg.stages.map((s) => s.rows),
      [7, 9, 8],
    );
  });

  it('matches plain {id, score} rows by id, from a JSON array, and a score field of the dataset', async () => {
    const data = join(dir, 'with-ids.jsonl');
    writeFileSync(
      data,
      ['a', 'b', 'c']
        .map((id, i) => JSON.stringify({ id, instruction: `t${i}`, input: '', output: 'o', score: 1 + i * 1.5 }))
        .join('\n'),
    );
    const file = join(dir, 'by-id.json');
    writeFileSync(
      file,
      JSON.stringify([
        { id: 'c', score: 4.0625 },
        { id: 'a', score: '1.5' },
        { id: 'b', score: 2 },
      ]),
    );
    const fromFile = await score({ kind: 'file', files: [file] }, data);
    assert.equal(fromFile.result.failed, 0);
    const fromColumn = await score({ kind: 'file' }, data);
    assert.equal(fromColumn.result.failed, 0);
    assert.match(fromColumn.result.scorer, /^file:with-ids\.jsonl@sha256:[0-9a-f]{64}#score$/);
    const scores = openObject(fromColumn.result.scoresUri, env);
    assert.deepEqual(
      (await readJsonl<{ score: number }>(scores.store, scores.key)).map((s) => s.score),
      [1, 2.5, 4],
    );
  });

  it('names the file, line and field of a bad score', async () => {
    const file = join(dir, 'bad.jsonl');
    writeFileSync(
      file,
      '{"id": "1", "score": "4.5", "data": ["Give three tips for staying healthy.", "x"]}\n\n{"id": "2", "score": "6"}\n',
    );
    const failure = await fails({ kind: 'file', files: [file] });
    assert.equal(failure.type, 'BadInput');
    assert.match(failure.message, /bad\.jsonl line 3: field "score" must be a number from 1 to 5/);

    writeFileSync(file, '{"id": "1", "score": 3, "data": "Give three tips"}\n');
    assert.match(
      (await fails({ kind: 'file', files: [file] })).message,
      /bad\.jsonl line 1: field "data" must be an array/,
    );
    writeFileSync(file, '{"id": "1", "score": 3}\n{"id": 1, "score": 4}\n');
    assert.match((await fails({ kind: 'file', files: [file] })).message, /line 2: duplicate id .*line 1/);
    const missing = await fails({ kind: 'file', files: [join(dir, 'nope.jsonl')] });
    assert.equal(missing.type, 'BadInput');
    assert.match(missing.message, /input\.scorer\.files\[0\].*does not exist/);
  });

  it('names the item of a JSON array and the first of two entries, and keeps the first of conflicting texts', async () => {
    const file = join(dir, 'array.json');
    writeFileSync(
      file,
      JSON.stringify([
        { id: 'a', score: 2 },
        { id: 'b', score: 3 },
        { id: 'a', score: 4 },
      ]),
    );
    assert.match(
      (await fails({ kind: 'file', files: [file] })).message,
      /^array\.json item 2: duplicate id in field "id" \(first given at array\.json item 0\)$/,
    );
    writeFileSync(file, JSON.stringify([{ id: 'a', score: 2 }, 7]));
    assert.match((await fails({ kind: 'file', files: [file] })).message, /^array\.json item 1: expected a JSON object/);
    writeFileSync(file, '[{"id": "a", "score": 2},');
    assert.match((await fails({ kind: 'file', files: [file] })).message, /^array\.json: not a valid JSON array/);

    // A second file's duplicate names where the first file gave the id; a BOM and CRLF line ends are read through.
    const first = join(dir, 'first.jsonl');
    const second = join(dir, 'second.jsonl');
    writeFileSync(first, '\ufeff{"id": "x", "score": 1}\r\n\r\n{"id": "I1", "score": 2}\r\n');
    writeFileSync(second, '{"id": "y", "score": 1}\n{"id": "I1", "score": 2}\n');
    assert.match(
      (await fails({ kind: 'file', files: [first, second] })).message,
      /^second\.jsonl line 2: duplicate id in field "id" \(first given at first\.jsonl line 3\)$/,
    );
    writeFileSync(second, '{"id": "y", "score": 1}\n{"id": "z", "score": 3');
    assert.match(
      (await fails({ kind: 'file', files: [first, second] })).message,
      /^second\.jsonl line 2: invalid JSON$/,
    );

    // Released rows giving one user text twice: the first score counts, whatever the later one says.
    const data = join(dir, 'two-rows.jsonl');
    writeFileSync(
      data,
      [
        { id: 'p', instruction: 'Same text', input: '', output: 'o' },
        { id: 'q', instruction: 'Other', input: 'with input', output: 'o' },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const released = join(dir, 'conflicting.jsonl');
    writeFileSync(
      released,
      [
        { id: 0, score: '4.5\n\n', data: ['Same text', 'r'] },
        { id: 1, score: 2, data: ['  Same text ', 'r'] },
        { id: 2, score: 3.25, data: ['Other\nwith input', 'r'] },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const { result } = await score({ kind: 'file', files: [released] }, data);
    const scores = openObject(result.scoresUri, env);
    assert.deepEqual(
      (await readJsonl<{ id: string; score: number }>(scores.store, scores.key)).map((s) => [s.id, s.score]),
      [
        ['p', 4.5],
        ['q', 3.25],
      ],
    );
  });

  it('scores 200,000 rows from a gzip score file read as a stream, by id and by user text', async () => {
    const rows = 200_000;
    const datasetRows: AlpacaRow[] = [];
    const scoreLines: string[] = [];
    const expected = new Map<string, number>();
    for (let i = 0; i < rows; i++) {
      const row = { id: `r${i}`, instruction: `Task ${i}`, input: i % 5 ? '' : `input ${i}`, output: 'o' };
      datasetRows.push(row);
      if (i % 7 === 3) continue; // left without a score
      const value = 1 + (i % 9) / 2;
      expected.set(row.id, value);
      scoreLines.push(
        JSON.stringify(
          i % 2
            ? {
                id: i,
                score: String(value),
                data: [row.input ? `${row.instruction}\n${row.input}` : row.instruction, 'r'],
              }
            : { id: row.id, score: value },
        ),
      );
    }
    const text = scoreLines.reverse().join('\n') + '\n';
    const file = join(dir, 'scores.jsonl.gz');
    writeFileSync(file, gzipSync(text));
    // The lookup the score step makes for each row, without the step's own writing, which is tested above.
    const scorer = await fileScorer(
      { ...depsFromEnv(env), env },
      { scorer: { kind: 'file', files: [file] } } as ScoreInput,
      {
        sha256: '',
        source: 'large.jsonl',
      },
    );
    assert.equal(scorer.label, `file:scores.jsonl.gz@sha256:${sha256(text)}`);
    let scored = 0;
    for (const row of datasetRows) {
      const found = await scorer.score(row);
      assert.equal(found.score, expected.get(row.id) ?? null, row.id);
      if (found.score !== null) scored += 1;
    }
    assert.equal(scored, expected.size);
    assert.ok(expected.size > 150_000 && expected.size < rows);
  });

  it('counts rows without a score against scorer.maxFailedFraction', async () => {
    const file = join(dir, 'partial.jsonl');
    const released = readFileSync(join(dir, 'phasedsft_scores.jsonl'), 'utf8').split('\n');
    writeFileSync(file, released.slice(0, 21).join('\n')); // 3 of 24 rows left unscored
    const failure = await fails({ kind: 'file', files: [file] });
    assert.match(failure.message, /3 of 24/);
    const { result } = await score({ kind: 'file', files: [file], maxFailedFraction: 0.2 });
    assert.equal(result.failed, 3);
    assert.equal(result.scored, 21);
  });

  it('accepts any decimal on the 1-5 scale, nothing else', () => {
    for (const [v, n] of [
      ['4.125', 4.125],
      ['3.5625', 3.5625],
      ['4.166666666666667', 4.166666666666667],
      ['4\n\n', 4],
      [' 5 ', 5],
      [1, 1],
      [4.699999999999999, 4.699999999999999],
      ['3.', 3],
    ] as const)
      assert.equal(scoreValue(v), n, JSON.stringify(v));
    for (const v of ['6', '0.5', '-3', '+3', '.5', '3e0', '4/5', 'four', '', null, true, [], 5.0001, Number.NaN])
      assert.equal(scoreValue(v), undefined, JSON.stringify(v));
  });
});
