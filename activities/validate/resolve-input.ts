import { type ErrorObject } from 'ajv';
import { PipelineInputSchema, type PipelineInput, type ResolvedInput } from '../../common/settings/schema';
import { batchProblem, resolveTrainingDefaults, runIdProblem } from '../../common/settings/derive';
import { settingsValidator } from '../../common/settings/validator';
import { badSetting, InvalidDataError } from '../../common/failures';
import { checkInputHygiene } from '../../common/settings/hygiene';
import { workerDefaults } from '../worker-defaults';

const validateInput = settingsValidator().compile<PipelineInput>(PipelineInputSchema);

function fieldOf(e: ErrorObject): string {
  const path = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const extra =
    e.keyword === 'additionalProperties' ? (e.params as { additionalProperty: string }).additionalProperty : '';
  const missing = e.keyword === 'required' ? (e.params as { missingProperty: string }).missingProperty : '';
  return [path, extra || missing].filter(Boolean).join('.') || '(input)';
}

function describe(e: ErrorObject): string {
  if (e.keyword === 'additionalProperties') return 'is not a known setting';
  if (e.keyword === 'required') return 'is required';
  return e.message ?? 'is invalid';
}

/**
 * Validates the workflow input and fills every default: fixed ones from the schema, deployment ones (store, GPU
 * queue) from this worker's environment. Errors name the field, e.g. `input.training.epochs: must be >= 1`, and are
 * never retried.
 */
export function resolvePipelineInput(raw: unknown, workflowId: string, env: NodeJS.ProcessEnv): ResolvedInput {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidDataError('input must be one JSON object such as { "dataset": "s3://bucket/train.jsonl" }', {
      field: 'input',
    });
  }
  checkInputHygiene(raw);
  const input = structuredClone(raw) as PipelineInput;
  // IFD scores are loss ratios, not on the 1-5 scale the default thresholds cut: such a run cuts by quantiles.
  const ifdRule = input.scorer?.kind === 'ifd' ? input.stages?.rule : undefined;
  if (input.scorer?.kind === 'ifd' && ifdRule === undefined) input.stages = { ...input.stages, rule: 'quantiles' };
  if (!validateInput(input)) {
    const errors = validateInput.errors ?? [];
    const first = errors[0];
    throw new InvalidDataError(errors.map((e) => `input.${fieldOf(e)}: ${describe(e)}`).join('; '), {
      field: first ? `input.${fieldOf(first)}` : 'input',
    });
  }
  const runId = input.runId ?? workflowId;
  const runIdError = runIdProblem(runId);
  if (runIdError) throw badSetting('input.runId', `${runIdError}${input.runId ? '' : ' (taken from the workflow id)'}`);
  if (ifdRule === 'thresholds') {
    throw badSetting(
      'input.stages.rule',
      '"thresholds" cuts scores on the 1-5 scale, but scorer.kind "ifd" scores are loss ratios; use "quantiles" ' +
        '(the default with ifd) or "random"',
    );
  }
  const compareWith = input.scorer?.compareWith;
  if (compareWith && compareWith.kind === input.scorer?.kind && compareWith.kind !== 'file') {
    throw badSetting('input.scorer.compareWith.kind', `"${compareWith.kind}" is already the scorer`);
  }
  if (compareWith?.files && compareWith.kind !== 'file') {
    throw badSetting('input.scorer.compareWith.files', 'only with compareWith.kind "file"');
  }
  const stages = input.stages as ResolvedInput['stages'];
  const t = stages.thresholds;
  if (stages.rule === 'thresholds' && t.length !== stages.count - 1) {
    throw badSetting(
      'input.stages.thresholds',
      `${stages.count} stages need ${stages.count - 1} thresholds, got ${t.length}`,
    );
  }
  if (stages.rule === 'thresholds' && t.some((v, i) => i > 0 && v <= t[i - 1])) {
    throw badSetting('input.stages.thresholds', 'must be strictly ascending');
  }
  const baseline = input.baseline as ResolvedInput['baseline'];
  if (baseline.mode === 'existing' && !baseline.checkpoint) {
    throw badSetting('input.baseline.checkpoint', 'is required when baseline.mode is "existing"');
  }
  const names = (input.evaluation?.benchmarks ?? []).map((b) => b.name);
  // Benchmark names are store keys and report columns, so two of one name would overwrite each other.
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate) throw badSetting('input.evaluation.benchmarks', `the name "${duplicate}" is used twice`);
  const batch = batchProblem(input.training as ResolvedInput['training']);
  if (batch) throw batch;
  const deployment = workerDefaults(env);
  return {
    ...(input as Pick<ResolvedInput, 'dataset' | 'datasetFormat' | 'datasetColumns' | 'maxRowBytes'>),
    runId,
    store: input.store ?? deployment.store,
    // The CPU and GPU workers read the same variable, so a run goes where the GPU worker polls.
    gpuTaskQueue: input.gpuTaskQueue ?? deployment.gpuTaskQueue,
    scorer: input.scorer as ResolvedInput['scorer'],
    stages,
    training: resolveTrainingDefaults(input.training as ResolvedInput['training']),
    baseline,
    evaluation: input.evaluation as ResolvedInput['evaluation'],
  };
}
