// The bad inputs of test/bad-inputs.test.ts: each one a run refuses, with what its message names. The files they
// name are written into `dir`, the one folder the test allows.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { PipelineInput } from '../../common/settings/schema';
import { repoRoot } from './temporal';

/** A canary that must never be repeated by any message. */
export const CANARY = 'Zq8wRv2LmN5tXy7Kp3Hs9Jd4Fg6Bc1Va';

export interface BadInput {
  what: string;
  input: (base: PipelineInput) => PipelineInput;
  /** The message names this (a field, a file and line). */
  names: RegExp;
}

const rows = readFileSync(join(repoRoot, 'data', 'demo', 'train.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .slice(0, 40)
  .map((l) => JSON.parse(l) as Record<string, string>);
const jsonl = (items: object[]) => items.map((r) => JSON.stringify(r)).join('\n') + '\n';

/** The good base's files (20 training rows, one benchmark prompt) and the cases, their files written under `dir`. */
export function badInputs(dir: string): { train: string; bench: string; cases: BadInput[] } {
  mkdirSync(join(dir, 'data'), { recursive: true });
  const file = (name: string, content: string | Buffer): string => {
    const path = join(dir, 'data', name);
    writeFileSync(path, content);
    return path;
  };
  const train = file('train.jsonl', jsonl(rows.slice(0, 20)));
  const bench = file('bench.jsonl', jsonl([{ id: 'q1', instruction: 'Say hi.' }]));
  const with_ = (patch: (b: PipelineInput) => Partial<PipelineInput>) => (b: PipelineInput) => ({ ...b, ...patch(b) });
  const dataset = (name: string, content: string | Buffer, extra: Partial<PipelineInput> = {}) =>
    with_(() => ({ dataset: file(name, content), ...extra }));
  const training = (t: object) => with_((b) => ({ training: { ...b.training, ...t } }));
  const scorer = (s: object) => with_((b) => ({ scorer: { ...b.scorer, ...s } }));
  const evaluation = (e: object) => with_((b) => ({ evaluation: { ...b.evaluation, ...e } }));
  const benchmark = (name: string, content: string) =>
    evaluation({ benchmarks: [{ name: 'b', uri: file(name, content) }] });
  const row = rows[0];
  const first = rows.slice(0, 20);
  const cases: BadInput[] = [
    // The dataset's rows.
    {
      what: 'a row missing output',
      input: dataset('no-output.jsonl', jsonl([...first.slice(0, 2), { instruction: 'a' }, ...first.slice(2)])),
      names: /no-output\.jsonl line 3: .*"output"/,
    },
    {
      what: 'an unknown row layout (prompt/query/response)',
      input: dataset(
        'layout.jsonl',
        jsonl(first.map((r) => ({ prompt: r.instruction, query: '', response: r.output }))),
      ),
      names: /layout\.jsonl line 1/,
    },
    {
      what: 'a line that is not JSON',
      input: dataset('bad-json.jsonl', jsonl(first).replace(/\n[^\n]*\n/, `\n{"instruction": ${CANARY}}\n`)),
      names: /bad-json\.jsonl line 2: invalid JSON/,
    },
    { what: 'an empty dataset', input: dataset('empty.jsonl', ''), names: /empty\.jsonl/ },
    {
      what: 'a duplicate id',
      input: dataset('dup.jsonl', jsonl([...first, first[3]])),
      names: /dup\.jsonl line 21: duplicate id/,
    },
    {
      what: 'a row over maxRowBytes',
      input: dataset('big-row.jsonl', jsonl([...first, { ...row, id: 'x', output: 'y'.repeat(5000) }]), {
        maxRowBytes: 4096,
      }),
      names: /big-row\.jsonl line 21: the row is \d+ bytes.*maxRowBytes/,
    },
    {
      what: 'invalid UTF-8',
      input: dataset('utf8.jsonl', Buffer.concat([Buffer.from(jsonl(first)), Buffer.from([0xc3, 0x28, 0x0a])])),
      names: /utf8\.jsonl line 21: not valid UTF-8/,
    },
    {
      what: 'a damaged gzip stream',
      input: dataset('cut.jsonl.gz', gzipSync(jsonl(rows)).subarray(0, 300)),
      names: /cut\.jsonl\.gz: gzip data is damaged/,
    },
    {
      what: 'a zstd file',
      input: dataset('z.jsonl.zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x10])),
      names: /zstd-compressed/,
    },
    {
      what: 'a JSON array cut in the middle',
      input: dataset('cut.json', JSON.stringify(first, null, 1).slice(0, 900)),
      names: /cut\.json/,
    },
    {
      what: 'an instruction that is a number',
      input: dataset('number.jsonl', jsonl([...first, { id: 'n', instruction: 7, output: 'b' }])),
      names: /number\.jsonl line 21: field "instruction" must be a string/,
    },
    {
      what: 'a conversation turn of an unknown role',
      input: dataset(
        'turns.jsonl',
        jsonl(first.map((r, i) => ({ id: `c${i}`, conversations: [{ from: 'alien', value: r.instruction }] }))),
      ),
      names: /turns\.jsonl line 1/,
    },
    {
      what: 'a CSV without the output column',
      input: dataset('no-output.csv', 'instruction,input\n"a","b"\n"c","d"\n'),
      names: /no-output\.csv line 2: .*"output"/,
    },
    {
      what: 'datasetFormat alpaca-json on a JSONL file',
      input: dataset('lines.jsonl', jsonl(first), { datasetFormat: 'alpaca-json' }),
      names: /lines\.jsonl: datasetFormat is "alpaca-json" but the file is not a JSON array/,
    },
    {
      what: 'a dataset that does not exist',
      input: with_(() => ({ dataset: join(dir, 'data', 'missing.jsonl') })),
      names: /input\.dataset: no file at .*missing\.jsonl/,
    },
    {
      what: 'a dataset outside the allowed folders',
      input: with_(() => ({ dataset: join(tmpdir(), 'elsewhere.jsonl') })),
      names: /input\.dataset: .*is outside the local folders/,
    },
    {
      what: 'an unsupported URI scheme',
      input: with_(() => ({ dataset: 'ftp://host/t.jsonl' })),
      names: /input\.dataset/,
    },
    {
      what: 'a malformed hub dataset',
      input: with_(() => ({ dataset: 'hf://datasets/only-org' })),
      names: /input\.dataset: "hf:\/\/datasets\/only-org" is not a hub dataset/,
    },
    // Stage sizes the rows cannot fill.
    {
      what: 'a 1-row dataset cut into 3 stages',
      input: dataset('one.jsonl', jsonl([row])),
      names: /input\.stages\.count: 3 stages need at least 3 training rows; the dataset has 1/,
    },
    {
      what: '20 quantile stages over 15 rows',
      input: with_(() => ({
        dataset: file('fifteen.jsonl', jsonl(rows.slice(0, 15))),
        stages: { count: 20, rule: 'quantiles' },
      })),
      names: /input\.stages\.count: 20 stages need at least 20 training rows; the dataset has 15/,
    },
    {
      what: 'held-out rows leave fewer training rows than stages',
      input: (b) => ({
        ...b,
        dataset: file('four.jsonl', jsonl(rows.slice(0, 4))),
        training: { epochs: 1 },
        evaluation: { judge: 'offline', heldoutFraction: 0.5 },
      }),
      names: /input\.stages\.count: 3 stages need at least 3 training rows; the dataset has 4 \(2 of them held out/,
    },
    // Benchmarks: read whole before anything is paid.
    {
      what: 'a benchmark prompt without a prompt field',
      input: benchmark(
        'no-prompt.jsonl',
        jsonl([
          { id: 'q1', instruction: 'a' },
          { id: 'q2', question: 'b' },
        ]),
      ),
      names: /no-prompt\.jsonl line 2: missing a prompt field/,
    },
    {
      what: 'a benchmark line that is not JSON',
      input: benchmark('bench-bad.jsonl', `{"instruction": "a"}\n{"instruction": ${CANARY}}\n`),
      names: /bench-bad\.jsonl line 2: invalid JSON/,
    },
    {
      what: 'a benchmark that does not exist',
      input: evaluation({ benchmarks: [{ name: 'b', uri: join(dir, 'data', 'nope.jsonl') }] }),
      names: /input\.evaluation\.benchmarks\[0\]\.uri: no file at .*nope\.jsonl/,
    },
    {
      what: 'a benchmark with a duplicate id',
      input: benchmark(
        'bench-dup.jsonl',
        jsonl([
          { id: 'q', instruction: 'a' },
          { id: 'q', instruction: 'b' },
        ]),
      ),
      names: /bench-dup\.jsonl line 2: duplicate id/,
    },
    { what: 'an empty benchmark', input: benchmark('bench-empty.jsonl', ''), names: /bench-empty\.jsonl/ },
    {
      what: 'two benchmarks of one name',
      input: evaluation({
        benchmarks: [
          { name: 'b', uri: bench },
          { name: 'b', uri: bench },
        ],
      }),
      names: /input\.evaluation\.benchmarks: the name "b" is used twice/,
    },
    // Score files: parsed whole and matched to the rows.
    {
      what: 'a garbled score file',
      input: scorer({
        kind: 'file',
        files: [file('garbled.jsonl', `{"id": "train-0001", "score": 3}\n{oops ${CANARY}\n`)],
      }),
      names: /garbled\.jsonl line 2/,
    },
    {
      what: 'a score out of range',
      input: scorer({ kind: 'file', files: [file('range.jsonl', jsonl(first.map((r) => ({ id: r.id, score: 7 }))))] }),
      names: /range\.jsonl line 1/,
    },
    {
      what: 'a NaN score',
      input: scorer({
        kind: 'file',
        files: [file('nan.jsonl', jsonl(first.map((r) => ({ id: r.id, score: 'NaN' }))))],
      }),
      names: /nan\.jsonl line 1/,
    },
    {
      what: 'scores for half of the rows',
      input: scorer({
        kind: 'file',
        files: [file('half.jsonl', jsonl(rows.slice(0, 10).map((r) => ({ id: r.id, score: 2 }))))],
      }),
      names: /input\.scorer\.files: 10 of 20 rows have no score/,
    },
    {
      what: 'score entries without a score',
      input: scorer({ kind: 'file', files: [file('noscore.jsonl', jsonl(first.map((r) => ({ id: r.id }))))] }),
      names: /noscore\.jsonl line 1/,
    },
    {
      what: "a dataset's own score out of range",
      input: dataset('own-score.jsonl', jsonl(first.map((r) => ({ ...r, score: 9 }))), { scorer: { kind: 'file' } }),
      names: /own-score\.jsonl: row train-0001: field "score" must be a number from 1 to 5/,
    },
    {
      what: 'scorer file without files, on rows without a score field',
      input: scorer({ kind: 'file' }),
      names: /input\.dataset: 20 of 20 rows have no score \(no "score" field/,
    },
    // Secrets and sizes: refused naming the field, never echoing the value.
    {
      what: 'an API key as scorer.model',
      input: scorer({ model: `sk-proj-${CANARY}` }),
      names: /input\.scorer\.model: looks like an API key/,
    },
    {
      what: 'a Hugging Face token as judgeModel',
      input: evaluation({ judgeModel: `hf_${CANARY}` }),
      names: /input\.evaluation\.judgeModel: looks like a Hugging Face token/,
    },
    {
      what: 'an AWS key id in the store',
      input: with_(() => ({ store: `s3://bucket/AKIAIOSFODNN7EXAMPLE/runs` })),
      names: /input\.store: looks like an AWS access key id/,
    },
    {
      what: 'a long random token in a column name',
      input: with_(() => ({ datasetColumns: { output: CANARY } })),
      names: /input\.datasetColumns\.output: looks like a long random token/,
    },
    {
      what: 'credentials in an S3 dataset URI',
      input: with_(() => ({ dataset: `s3://AKIAIOSFODNN7EXAMPLE:${CANARY}@bucket/train.jsonl` })),
      names: /input\.dataset: the URI carries credentials/,
    },
    {
      what: 'credentials in an https benchmark URI',
      input: evaluation({ benchmarks: [{ name: 'b', uri: `https://user:${CANARY}@host/b.jsonl` }] }),
      names: /input\.evaluation\.benchmarks\[0\]\.uri: the URI carries credentials/,
    },
    {
      what: 'a 10 MB string in scorer.model',
      input: scorer({ model: 'm'.repeat(10 * 1024 * 1024) }),
      names: /input: \d+ bytes of JSON, over the limit/,
    },
    // Bounds and rules of the schema.
    { what: 'epochs 1e12', input: training({ epochs: 1e12 }), names: /input\.training\.epochs: must be <= 1000/ },
    {
      what: 'learningRate 1e308',
      input: training({ learningRate: 1e308 }),
      names: /input\.training\.learningRate: must be <= 1/,
    },
    {
      what: 'maxLength 1e9',
      input: training({ maxLength: 1e9 }),
      names: /input\.training\.maxLength: must be <= 1048576/,
    },
    { what: 'maxRowBytes 1e12', input: with_(() => ({ maxRowBytes: 1e12 })), names: /input\.maxRowBytes: must be <=/ },
    {
      what: '21 stages',
      input: with_(() => ({ stages: { count: 21 } })),
      names: /input\.stages\.count: must be <= 20/,
    },
    {
      what: 'a setting of a misspelt name',
      input: with_(() => ({ trainng: {} }) as never),
      names: /input\.trainng: is not a known setting/,
    },
    {
      what: 'thresholds not ascending',
      input: with_(() => ({ stages: { thresholds: [3, 2] } })),
      names: /input\.stages\.thresholds: must be strictly ascending/,
    },
    {
      what: 'thresholds of the wrong count',
      input: with_(() => ({ stages: { count: 4 } })),
      names: /input\.stages\.thresholds: 4 stages need 3 thresholds, got 2/,
    },
    {
      what: 'baseline existing without a checkpoint',
      input: with_(() => ({ baseline: { mode: 'existing' } })),
      names: /input\.baseline\.checkpoint: is required/,
    },
    {
      what: 'ifd with threshold stages',
      input: with_(() => ({ scorer: { kind: 'ifd' }, stages: { rule: 'thresholds' } })),
      names: /input\.stages\.rule: "thresholds" cuts scores on the 1-5 scale/,
    },
    {
      what: 'a global batch that batch size does not divide',
      input: training({ batchSize: 3, globalBatchSize: 8 }),
      names: /input\.training\.globalBatchSize: 8 is not a multiple/,
    },
    {
      what: 'compareWith the scorer itself',
      input: scorer({ kind: 'offline', compareWith: { kind: 'offline' } }),
      names: /input\.scorer\.compareWith\.kind: "offline" is already the scorer/,
    },
  ];
  return { train, bench, cases };
}
