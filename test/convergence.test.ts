import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { after, before, describe, it } from 'mocha';
import { commitManifest } from '../activities/artifacts/manifest';
import { trainKeys } from '../activities/artifacts/run-keys';
import { depsFromEnv } from '../activities/deps';
import { evaluate } from '../activities/evaluate/evaluate';
import { buildRunReport } from '../activities/report/write-report';
import type { EvaluateResult } from '../activities/types';
import { convergenceFlags, unreliableModels, type LossRecord } from '../common/convergence';
import { LocalStore, type ObjectStore } from '../store';
import { writeReportFixture } from './helpers/report-fixture';

const repoRoot = resolve(__dirname, '..');

/** A loss curve from its first and last loss, falling evenly in between. */
const curve = (name: string, first: number, last: number, points = 20): LossRecord => ({
  name,
  lossFirst: first,
  lossLast: last,
  losses: Array.from({ length: points }, (_, i) => first + ((last - first) * i) / (points - 1)),
});

/** A training as the train step records it: manifest and losses.json. */
async function recordTraining(store: ObjectStore, runId: string, c: LossRecord, steps = 100) {
  const keys = trainKeys(runId, c.name);
  await store.put(keys.losses, JSON.stringify({ losses: c.losses }));
  await commitManifest(store, keys.manifest, {
    runId,
    step: `train/${c.name}`,
    inputsHash: 'test',
    outputs: [],
    result: {
      name: c.name,
      modelUri: store.uriFor(keys.final),
      steps,
      lossFirst: c.lossFirst,
      lossLast: c.lossLast,
      resumedFromStep: 0,
      attempts: 1,
      reused: false,
    },
  });
}

describe('training convergence', function () {
  this.timeout(120_000);

  it("flags the issue's One-off, whose loss ended far above every stage's, and marks every win rate unreliable", () => {
    // The demo before the fix (learning rate 3e-3, tiny model from scratch), as the issue recorded it.
    const flags = convergenceFlags([
      curve('stage-1', 4.9, 0.0),
      curve('stage-2', 2.1, 0.165),
      curve('stage-3', 1.9, 0.29),
      curve('one-off', 5.513, 1.132),
    ]);
    assert.deepEqual(
      flags.map((f) => f.name),
      ['one-off'],
    );
    assert.match(flags[0].reason, /far above/);
    const unreliable = unreliableModels(flags, 'one-off', ['stage-1', 'stage-2', 'stage-3']);
    assert.deepEqual([...unreliable], ['stage-1', 'stage-2', 'stage-3']);
  });

  it('flags a loss that did not fall and one that turned NaN; only their own win rates are unreliable', () => {
    const nan = { ...curve('stage-2', 2, 0.5), losses: [2, 1, null, 0.5] };
    const flags = convergenceFlags([
      curve('stage-1', 2.0, 1.95),
      nan,
      curve('stage-3', 2.2, 0.4),
      curve('one-off', 2.5, 0.45),
    ]);
    assert.deepEqual(
      flags.map((f) => [f.name, /did not fall/.test(f.reason) || /NaN/.test(f.reason)]),
      [
        ['stage-1', true],
        ['stage-2', true],
      ],
    );
    assert.deepEqual(
      [...unreliableModels(flags, 'one-off', ['stage-1', 'stage-2', 'stage-3'])],
      ['stage-1', 'stage-2'],
    );
    assert.deepEqual(convergenceFlags([{ name: 'x', lossFirst: null, lossLast: 1, losses: [] }])[0].name, 'x');
    // A later stage that starts where the others end has nothing left to fall by: it trained well.
    assert.deepEqual(convergenceFlags([curve('stage-1', 2, 0.01), curve('stage-2', 0.005, 0.005)]), []);
  });

  it('flags no training of the last measured demo, which compares fairly', () => {
    // `npm run demo` as data/README.md records it (pretrained tiny model, learning rate 1e-3, 20 epochs).
    const demo = [
      curve('stage-1', 5.036, 0.012),
      curve('stage-2', 11.774, 0.0),
      curve('stage-3', 17.595, 0.0),
      curve('random-stage-1', 8.45, 0.146),
      curve('random-stage-2', 0.442, 0.0),
      curve('random-stage-3', 0.0, 0.0),
      curve('one-off', 6.781, 0.0),
    ];
    assert.deepEqual(convergenceFlags(demo), []);
    // The same demo at 10 epochs: the control's first stage ended far above the others.
    const tenEpochs = [
      curve('stage-1', 5.021, 0.027),
      curve('stage-2', 8.323, 0.0),
      curve('stage-3', 13.464, 0.0),
      curve('random-stage-1', 8.408, 1.024),
      curve('random-stage-2', 1.254, 0.085),
      curve('random-stage-3', 0.287, 0.0),
      curve('one-off', 6.77, 0.428),
    ];
    assert.deepEqual(
      convergenceFlags(tenEpochs).map((f) => f.name),
      ['random-stage-1'],
    );
  });

  it('flags the arm of a small real comparison that trained at a learning rate it diverges at', async function () {
    this.timeout(600_000); // two short trainings: about 20 s on an idle machine
    // Two arms of the builtin tiny model on the same demo rows, one at the tiny preset's rate, one at 5.
    const dir = mkdtempSync(join(tmpdir(), 'convergence-train-'));
    const rows = readFileSync(join(repoRoot, 'data', 'demo', 'train.jsonl'), 'utf8')
      .split('\n')
      .slice(0, 64);
    writeFileSync(join(dir, 'train.jsonl'), `${rows.join('\n')}\n`);
    const { python } = depsFromEnv(process.env);
    const train = (name: string, learningRate: number) => {
      const config = join(dir, `${name}.json`);
      writeFileSync(
        config,
        JSON.stringify({
          train_file: join(dir, 'train.jsonl'),
          final_dir: join(dir, name, 'final'),
          output_dir: join(dir, name, 'checkpoints'),
          model_name_or_path: 'builtin:tiny-llama',
          max_length: 128,
          max_steps: 24,
          per_device_train_batch_size: 8,
          learning_rate: learningRate,
          save_steps: 1000,
        }),
      );
      return new Promise<LossRecord>((done, fail) =>
        execFile(python, ['-m', 'pift.train', config], { cwd: dir, timeout: 240_000 }, (err, stdout, stderr) => {
          if (err) return fail(new Error(`${name}: ${stderr.slice(-2000)}`));
          const event = stdout
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as { event: string; loss_first: number; loss_last: number; losses: number[] })
            .find((e) => e.event === 'done')!;
          done({ name, lossFirst: event.loss_first, lossLast: event.loss_last, losses: event.losses });
        }),
      );
    };
    try {
      const arms = await Promise.all([train('one-off', 3e-3), train('stage-1', 5)]);
      const flags = convergenceFlags(arms);
      assert.deepEqual(
        flags.map((f) => f.name),
        ['stage-1'],
        JSON.stringify(arms.map(({ name, lossFirst, lossLast }) => ({ name, lossFirst, lossLast }))),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('in a run with a diverged One-off', () => {
    let store: LocalStore;
    let runId: string;

    before(async () => {
      ({ store, runId } = (await writeReportFixture()) as { store: LocalStore; runId: string });
      await recordTraining(store, runId, curve('one-off', 3.1, 3.4), 144);
    });

    it('says so in report.md, report.html and the results table', async () => {
      const { markdown, html, table } = await buildRunReport(store, runId);
      for (const text of [markdown, table]) {
        assert.match(text, /\*\*Training did not converge\*\*[\s\S]*- one-off: its loss did not fall/);
        assert.match(text, /\| stage-1 \(unreliable\) \|/);
      }
      assert.match(markdown, /\| one-off \| 144 \| 3\.100 \| 3\.400 \| \d+ \| \*\*no\*\*: its loss did not fall/);
      assert.match(html, /id="convergence-warning"/);
      assert.match(html, /<td>stage-3 <span class="unreliable">unreliable<\/span><\/td>/);
    });

    it('says so on the command line', async () => {
      const out = mkdtempSync(join(tmpdir(), 'convergence-cli-'));
      const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((done) =>
        execFile(
          process.execPath,
          [
            '-r',
            'ts-node/register',
            join(repoRoot, 'client', 'cli.ts'),
            'report',
            runId,
            '--store',
            store.root,
            '--out',
            out,
          ],
          { cwd: repoRoot, env: { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true' }, timeout: 90_000 },
          (err, stdout, stderr) => done({ code: err ? 1 : 0, stdout, stderr }),
        ),
      );
      rmSync(out, { recursive: true, force: true });
      assert.equal(code, 0, stderr);
      assert.match(stdout, /Training did not converge[\s\S]*Unreliable win rates: stage-1, stage-2, stage-3/);
    });
  });

  describe('in the evaluation step', () => {
    let dir: string;
    let env: NodeJS.ProcessEnv;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'convergence-eval-'));
      mkdirSync(join(dir, 'in'));
      env = { PIFT_FILE_ROOTS: dir, PIFT_WORKDIR: join(dir, 'work') };
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    const evaluateRun = async (runId: string, trainings: LossRecord[]) => {
      const store = new LocalStore(join(dir, 'store'));
      for (const t of trainings) await recordTraining(store, runId, t);
      const file = (name: string, rows: unknown[]) => {
        const path = join(dir, 'in', `${runId}-${name}`);
        writeFileSync(path, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
        return path;
      };
      const ids = ['a', 'b', 'c', 'd'];
      const prompts = ids.map((id) => ({ id, instruction: `Say ${id}.`, input: '', reference: id }));
      const answers = (right: number) => ({
        bench: file(
          'answers.jsonl',
          ids.map((id, i) => ({ id, answer: i < right ? id : 'no' })),
        ),
      });
      const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
      const result = (await mock.run(() =>
        evaluate(
          { ...depsFromEnv(env), env },
          {
            runId,
            store: join(dir, 'store'),
            benchmarks: [{ name: 'bench', uri: file('bench.jsonl', prompts), prompts: 4, withReferences: 4 }],
            baseline: { name: 'one-off', answers: answers(1), reused: false },
            candidates: [{ name: 'stage-1', answers: answers(3), reused: false }],
            judge: 'offline',
            concurrency: 2,
          },
        ),
      )) as EvaluateResult;
      const stored = (name: string) => readFileSync(join(dir, 'store', runId, 'evaluate', name), 'utf8');
      return { result, markdown: stored('results.md'), json: JSON.parse(stored('results.json')) };
    };

    it('marks the win rates against a diverged training in results.md and results.json', async () => {
      const { result, markdown, json } = await evaluateRun('diverged', [
        curve('stage-1', 2.0, 0.3),
        curve('one-off', 2.0, 2.6),
      ]);
      assert.match(markdown, /\| stage-1 \(unreliable\) \|/);
      assert.match(markdown, /- one-off: its loss did not fall \(2\.000 → 2\.600/);
      assert.deepEqual(json.convergence.unreliable, ['stage-1']);
      assert.deepEqual(result.convergence?.unreliable, ['stage-1']);
      assert.equal(result.markdown, markdown);
    });

    it('writes results as before when every training converged', async () => {
      const { result, markdown, json } = await evaluateRun('converged', [
        curve('stage-1', 2.0, 0.3),
        curve('one-off', 2.0, 0.25),
      ]);
      assert.doesNotMatch(markdown, /unreliable|converge/);
      assert.equal(json.convergence, undefined);
      assert.equal(result.convergence, undefined);
    });
  });
});
