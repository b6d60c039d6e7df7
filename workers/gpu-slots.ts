import { positiveIntegerSetting } from '../activities/worker-defaults';

/**
 * How one GPU worker process shares its machine's GPUs: as one slot (every visible GPU for one training at a time, the
 * default; a stage with `training.processes` > 1 uses them together) or split into PIFT_GPU_SLOTS equal slots, each
 * a worker of its own that runs one activity at a time on its own GPUs (for example 8 GPUs as 4 slots of 2: four
 * stages or baselines of different runs at once). A slot's `devices` is its CUDA_VISIBLE_DEVICES; undefined: the
 * process's own setting, unchanged.
 */
export function gpuSlots(env: NodeJS.ProcessEnv): Array<{ devices?: string }> {
  const slots = positiveIntegerSetting(env, 'PIFT_GPU_SLOTS', 1);
  if (slots === 1) return [{}];
  const listed = (env.PIFT_GPUS ?? env.CUDA_VISIBLE_DEVICES ?? '').trim();
  const gpus = listed
    .split(',')
    .map((g) => g.trim())
    .filter(Boolean);
  if (gpus.length === 0) {
    throw new Error(
      `PIFT_GPU_SLOTS=${slots} needs the GPUs to split: set PIFT_GPUS (or CUDA_VISIBLE_DEVICES), e.g. PIFT_GPUS=0,1,2,3`,
    );
  }
  if (gpus.length % slots !== 0) {
    throw new Error(
      `PIFT_GPU_SLOTS=${slots} does not divide the ${gpus.length} GPUs ${gpus.join(',')}: each slot gets the same number`,
    );
  }
  const size = gpus.length / slots;
  return Array.from({ length: slots }, (_, i) => ({ devices: gpus.slice(i * size, (i + 1) * size).join(',') }));
}
