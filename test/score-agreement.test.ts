import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'mocha';
import { depsFromEnv } from '../activities/deps';
import { scoreAgreement } from '../activities/score/score-agreement';

/** Score lines as the score step writes them: one `{id, score}` a line, in dataset order. */
const scoreFile = (rows: Array<[string, number | null]>) =>
  rows.map(([id, score]) => `${JSON.stringify({ id, score, scorer: 's' })}\n`).join('');

describe('score agreement (scoreAgreement)', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pift-agreement-'));
    env = { PIFT_FILE_ROOTS: dir, PIFT_WORKDIR: join(dir, 'work') };
    mkdirSync(join(dir, 'in'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function agreementBytes(runId: string, primary: string, secondary: string, secondaryScorer = 'ifd:m') {
    const write = (name: string, text: string) => {
      writeFileSync(join(dir, 'in', name), text);
      return join(dir, 'in', name);
    };
    const sha = (text: string) => createHash('sha256').update(text).digest('hex');
    const result = await scoreAgreement(
      { ...depsFromEnv(env), env },
      {
        runId,
        store: join(dir, 'store'),
        primary: { scoresUri: write(`${runId}-p.jsonl`, primary), scorer: 'llm:m', sha256: sha(primary) },
        secondary: { scoresUri: write(`${runId}-s.jsonl`, secondary), scorer: secondaryScorer, sha256: sha(secondary) },
      },
    );
    const stored = readFileSync(join(dir, 'store', runId, 'score', 'agreement', 'agreement.json'), 'utf8');
    assert.deepEqual(JSON.parse(stored), result);
    return stored.replace(new RegExp(`${dir}/in/`, 'g'), '');
  }

  const primaryRows: Array<[string, number | null]> = [
    ['a', 4],
    ['b', 2.5],
    ['c', null],
    ['d', 5],
    ['e', 1],
    ['f', 3.25],
    ['g', 4],
  ];
  const secondaryRows: Array<[string, number | null]> = [
    ['a', 0.91],
    ['b', 0.42],
    ['c', 0.7],
    ['d', null],
    ['e', 0.3],
    ['f', 1.27],
    ['g', 0.91],
  ];
  // By hand: the five rows both scored rank [4.5, 2, 1, 3, 4.5] against [3.5, 2, 1, 5, 3.5], so 6.5 / 9.5.
  const expected = (uri: string) =>
    `{
  "spearman": 0.6842105263157895,
  "rows": 5,
  "primary": {
    "scorer": "llm:m",
    "histogram": {
      "1": 1,
      "2": 1,
      "3": 1,
      "4": 2,
      "5": 1,
      "failed": 1
    }
  },
  "secondary": {
    "scorer": "ifd:m",
    "histogram": {
      "0.3": 1,
      "0.4": 1,
      "0.5": 0,
      "0.6": 0,
      "0.7": 1,
      "0.8": 0,
      "0.9": 2,
      "1.0": 0,
      "1.1": 0,
      "1.2": 1,
      "failed": 1
    },
    "scoresUri": "${uri}"
  }
}
`;

  it('writes the same bytes whether the two files list the rows in the same order or not', async () => {
    const same = await agreementBytes('same', scoreFile(primaryRows), scoreFile(secondaryRows));
    assert.equal(same, expected('same-s.jsonl'));
    const shuffled = [4, 0, 6, 2, 5, 1, 3].map((i) => secondaryRows[i]);
    const other = await agreementBytes('shuffled', scoreFile(primaryRows), scoreFile(shuffled));
    assert.equal(other, expected('shuffled-s.jsonl'));
  });

  it('pairs rows by id when the secondary file lacks some rows or has others', async () => {
    const secondary: Array<[string, number | null]> = [
      ['x', 2],
      ['g', 3],
      ['a', 4],
      ['b', 2],
      ['zz', null],
      ['e', 1],
      ['f', 5],
    ];
    const text = await agreementBytes('partial', scoreFile(primaryRows), scoreFile(secondary), 'llm:other');
    // Rows a, b, e, f and g are in both; the secondary histogram counts its own rows, x and zz included.
    assert.equal(
      text,
      expected('partial-s.jsonl')
        .replace('0.6842105263157895', '0.6668859288553503')
        .replace('ifd:m', 'llm:other')
        .replace(
          /("secondary": \{[^]*"histogram": )\{[^}]*\}/,
          `$1${JSON.stringify({ 1: 1, 2: 2, 3: 1, 4: 1, 5: 1, failed: 1 }, null, 2).replace(/\n/g, '\n    ')}`,
        ),
    );
  });

  it('pairs 200,000 rows in file order, and by id once the orders part', async () => {
    const rows = 200_000;
    const primary: Array<[string, number | null]> = [];
    const secondary: Array<[string, number | null]> = [];
    for (let i = 0; i < rows; i++) {
      primary.push([`r${i}`, i % 10 === 9 ? null : 1 + (i % 5)]);
      // The same ranking on an open scale: rho is 1 over the rows both scored.
      secondary.push([`r${i}`, i % 7 === 6 ? null : (i % 5) / 10 + 0.05]);
    }
    const both = primary.filter(([, s], i) => s !== null && secondary[i][1] !== null).length;
    const inOrder = JSON.parse(await agreementBytes('large', scoreFile(primary), scoreFile(secondary)));
    assert.equal(inOrder.rows, both);
    assert.equal(inOrder.spearman, 1);
    assert.equal(inOrder.primary.histogram.failed, rows / 10);
    // The last two lines swapped: the side-by-side read gives up at the end and pairs by id, to the same numbers.
    const swapped = [...secondary.slice(0, -2), secondary[rows - 1], secondary[rows - 2]];
    const byId = JSON.parse(await agreementBytes('large-swapped', scoreFile(primary), scoreFile(swapped)));
    assert.deepEqual(
      { ...byId, secondary: { ...byId.secondary, scoresUri: '' } },
      {
        ...inOrder,
        secondary: { ...inOrder.secondary, scoresUri: '' },
      },
    );
  });
});
