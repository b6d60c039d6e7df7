import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger } from '@temporalio/worker';
import { before, describe, it } from 'mocha';
import { sha256 } from '../activities/artifacts/hashing';
import { depsFromEnv } from '../activities/deps';
import { scoreDifficulty } from '../activities/score/score-difficulty';
import type { ScoreResult } from '../activities/types';
import { resolvePipelineInput } from '../activities/validate/resolve-input';
import { startFakeOpenAI, type FakeOpenAI } from './helpers/fake-openai';
import { cleanUpFakeEndpoint, fakeEndpointEnv } from './helpers/endpoint-env';

/**
 * The score step's stored bytes, pinned: dataset.jsonl, prompt.txt, scores.jsonl, every part, the manifest (less its
 * time and the store's location) and the result. Runs already in stores were written by the step that held every row
 * in memory; the streaming step must write the very same bytes, or resumed runs would see their outputs change.
 */

const ROWS = 250;
const rowText = (i: number) => `Instruction number ${i} of the bytes test.`;
const rowOf = (content: unknown) => Number(/Instruction number (\d+) of/.exec(String(content))?.[1] ?? -1);

describe('score step output bytes', function () {
  this.timeout(60_000);
  let llm: FakeOpenAI;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    llm = await startFakeOpenAI({ apiKey: 'sk-bytes' });
    dir = mkdtempSync(join(tmpdir(), 'score-bytes-'));
    const alpaca = Array.from({ length: ROWS }, (_, i) =>
      JSON.stringify({
        id: `r${i}`,
        instruction: rowText(i),
        ...(i % 3 ? { input: `input ${i} "quoted" \u00e9` } : {}),
        output: `answer ${i}`,
        ...(i % 5 ? { score: 1 + (i % 40) / 10 } : {}),
      }),
    );
    writeFileSync(join(dir, 'alpaca.jsonl'), `${alpaca.join('\n')}\n`);
    const chats = Array.from({ length: 130 }, (_, i) => ({
      conversations: [
        ...(i % 4 ? [] : [{ from: 'system', value: 'Be brief.' }]),
        { from: 'human', value: `Question ${i}: ${'why '.repeat(i % 9)}?` },
        { from: 'gpt', value: `Because ${i}.` },
      ],
    }));
    writeFileSync(join(dir, 'chats.json'), JSON.stringify(chats));
    env = fakeEndpointEnv(llm, 'sk-bytes', dir);
  });
  cleanUpFakeEndpoint(() => ({ llm, dir }));

  const score = (runId: string, dataset: string, scorer: Record<string, unknown>) => {
    const cfg = resolvePipelineInput(
      { dataset: join(dir, dataset), store: join(dir, 'store'), runId, scorer: { cache: false, ...scorer } },
      'wf',
      env,
    );
    const mock = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    return mock.run(() =>
      scoreDifficulty(
        { ...depsFromEnv(env), env },
        {
          runId: cfg.runId,
          store: cfg.store,
          dataset: cfg.dataset,
          datasetFormat: cfg.datasetFormat,
          scorer: cfg.scorer,
        },
      ),
    ) as Promise<ScoreResult>;
  };

  /** sha256 of every file the step left under score/, the manifest without its time and the store's location. */
  function storedBytes(runId: string): Record<string, string> {
    const root = join(dir, 'store', runId, 'score');
    const storeUrl = pathToFileURL(join(dir, 'store')).href;
    const files: Record<string, string> = {};
    const walk = (d: string) => {
      for (const name of readdirSync(d).sort()) {
        const path = join(d, name);
        if (statSync(path).isDirectory()) walk(path);
        else {
          let text = readFileSync(path, 'utf8');
          if (name === 'manifest.json') text = text.replace(/"createdAt": "[^"]*"/, '"createdAt": ""');
          files[relative(root, path)] = sha256(text.split(storeUrl).join('STORE'));
        }
      }
    };
    walk(root);
    return files;
  }

  const resultSha = (result: ScoreResult) =>
    sha256(
      JSON.stringify(result)
        .split(pathToFileURL(join(dir, 'store')).href)
        .join('STORE'),
    );

  it('offline scorer, Alpaca rows in three parts', async () => {
    const result = await score('offline', 'alpaca.jsonl', { kind: 'offline' });
    assert.deepEqual(storedBytes('offline'), PINNED.offline.files);
    assert.equal(resultSha(result), PINNED.offline.result);
  });

  it('offline scorer, ShareGPT conversations', async () => {
    const result = await score('chats', 'chats.json', { kind: 'offline' });
    assert.deepEqual(storedBytes('chats'), PINNED.chats.files);
    assert.equal(resultSha(result), PINNED.chats.result);
  });

  it('the dataset\'s own "score" field, rows without one counted as failed', async () => {
    const result = await score('file', 'alpaca.jsonl', { kind: 'file', maxFailedFraction: 0.5 });
    assert.equal(result.failed, ROWS / 5);
    assert.deepEqual(storedBytes('file'), PINNED.file.files);
    assert.equal(resultSha(result), PINNED.file.result);
  });

  it('an endpoint, two samples, a price, and some answers left unparseable', async () => {
    llm.handle((req) => {
      const i = rowOf(req.messages[0].content);
      return { delayMs: (i * 37) % 11, then: { content: i % 50 === 7 ? 'no idea' : String(1 + (i % 9) / 2) } };
    });
    const result = await score('online', 'alpaca.jsonl', {
      kind: 'openai',
      samples: 2,
      parseRetries: 0,
      concurrency: 16,
      maxFailedFraction: 0.1,
      pricePerMillionTokens: { input: 1, output: 2 },
    });
    assert.equal(result.failed, 5);
    assert.deepEqual(storedBytes('online'), PINNED.online.files);
    assert.equal(resultSha(result), PINNED.online.result);
  });

  it('too many unparseable answers: the step fails and drops just the parts holding them', async () => {
    llm.handle((req) => {
      const i = rowOf(req.messages[0].content);
      return { content: i === 120 || i === 121 || i === 240 ? '???' : '3' };
    });
    await assert.rejects(
      score('unparseable', 'alpaca.jsonl', { kind: 'openai', parseRetries: 0, maxFailedFraction: 0 }),
      (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.type, 'UnparseableScores');
        assert.equal(err.message, PINNED.unparseable.message);
        return true;
      },
    );
    assert.deepEqual(storedBytes('unparseable'), PINNED.unparseable.files);
  });
});

const PINNED = {
  offline: {
    result: '1942fff9a6372b45bba5c8a8259b2296e714317621fa5b49098a29dbff244753',
    files: {
      'dataset.jsonl': '99729a196e38af0d7bf12fa6c03a6136872b7a6f02f032d24619f880b9965e5c',
      'manifest.json': '39829cea754bc62cfdad0031a1de16944a2d33a0f86121f17d3b688d3c37f9d4',
      'parts/35cb6a6f0e00-00000.jsonl': 'b8030fe352917043eae0e466a0e3599a29b2de20ebd331d352be05df5c5d9e83',
      'parts/35cb6a6f0e00-00001.jsonl': 'c6c6b69020f36d3689f057d85093f8891242142758d43020acd049baf51f39d6',
      'parts/35cb6a6f0e00-00002.jsonl': '4410c4fc4e17a27d79b29b6f412981c8dc643d3e2e0bf619993f9310c5baa359',
      'prompt.txt': 'ecc1823bda007a797d3274227331415f85933243ce16ede265871f686db2d09f',
      'scores.jsonl': 'f793f5147506c2f8f356a7687a9aeb4321110b36a8d1d0d340580c83ec0a144f',
    },
  },
  chats: {
    result: 'f62844b3fe0b264a157829671bcfbd7acdfc0db07069b609c29296ee78f3b114',
    files: {
      'dataset.jsonl': '99da86e6c36ecfc74163ad0b6680da58eb4c16ba39b0d417f09a1e1179000874',
      'manifest.json': '289f48f41a6d73678b033f4912e51c7a2bcbfc23401b836ec739d794c35f36bb',
      'parts/4fa6371ead40-00000.jsonl': '9b99ebd2f3f6a7dc32185fe175e1de7814c026847d5384bb2c6ef89516a698bc',
      'parts/4fa6371ead40-00001.jsonl': '98c03b43062eb47ef5d965fd58827d6b59b1ce5a19a5d7abff685f2e28e70bfa',
      'prompt.txt': '7ee1b5626ce61b31135fc5bd915ed65fb903e475c63f0644ffb8ea9c6baad352',
      'scores.jsonl': '18dce83281a84332ecc1628dd6a73f64609f3f47a656dc51fbb3dfd4c53ce819',
    },
  },
  file: {
    result: '679553c12115062454c1b5c45f94bf80fe573ba8b4c0df0da2adc9a724108d8d',
    files: {
      'dataset.jsonl': '99729a196e38af0d7bf12fa6c03a6136872b7a6f02f032d24619f880b9965e5c',
      'manifest.json': '11f0ff8598418212f3a828686a79afe885b00ee6e7ace45a85a371dfcf9b647f',
      'parts/2c68ac6a3016-00000.jsonl': '9e53d2e74a18ff771e755ddd9604aec07a7765ba64f1c7651a50b021ed7a434f',
      'parts/2c68ac6a3016-00001.jsonl': '0a3f8b5334a54901c8187619f40b8ae1453f2801a9d841609466d2bf2a413129',
      'parts/2c68ac6a3016-00002.jsonl': '459ec907b6b56a2c55aba812c27d7c3b9b238194654b47ac6ac358b049acbceb',
      'prompt.txt': 'ecc1823bda007a797d3274227331415f85933243ce16ede265871f686db2d09f',
      'scores.jsonl': '06b25207a656bf8e0fee12a5743f3731648cd23c86af874114f824492c91e09f',
    },
  },
  online: {
    result: '85fc47ea9015b7ce0e9dafc748812f09f60c9d86f33bee5e7108470dc7f04be0',
    files: {
      'dataset.jsonl': '99729a196e38af0d7bf12fa6c03a6136872b7a6f02f032d24619f880b9965e5c',
      'manifest.json': 'fbf76d07c889fd5855bbee92ebfbcc68ebf38aa55d2e2b6535366d38f9c67561',
      'parts/3532c83dda3c-00000.jsonl': 'f04fb20123e72382a074c2aa2eb30241ea67d509e448d6da3d1180787be5c352',
      'parts/3532c83dda3c-00001.jsonl': 'dd521bf49c121a00df29143c4748886ef8db2f7978361699c0bdb27aa310796b',
      'parts/3532c83dda3c-00002.jsonl': 'ae093504aa1c46ab85d6c7b2f59f9b28102ab5b006d652e51eab4fed6ad7ca4b',
      'prompt.txt': 'ecc1823bda007a797d3274227331415f85933243ce16ede265871f686db2d09f',
      'scores.jsonl': '7a6ee8c6db5404a4db1a4fd20bfd1ba54f0190222689de486fa85dc0419ff996',
    },
  },
  unparseable: {
    files: {
      'dataset.jsonl': '99729a196e38af0d7bf12fa6c03a6136872b7a6f02f032d24619f880b9965e5c',
      'parts/648fa4f87e99-00000.jsonl': '8baeb8f9a4e3836b240bd69d5c5b639c72d80940aa050aaccd5b823d980b97d7',
      'prompt.txt': 'ecc1823bda007a797d3274227331415f85933243ce16ede265871f686db2d09f',
    },
    message: '3 of 250 difficulty answers could not be parsed (limit 0%); e.g. row r120: "???"',
  },
};
