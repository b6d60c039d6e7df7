import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { gpuSlots } from '../workers/gpu-slots';

describe('GPU slots of a GPU worker process', () => {
  it('is one slot with the process environment untouched by default', () => {
    assert.deepEqual(gpuSlots({}), [{}]);
    assert.deepEqual(gpuSlots({ PIFT_GPU_SLOTS: '1', CUDA_VISIBLE_DEVICES: '0,1' }), [{}]);
  });

  it('splits the listed GPUs into equal slots, in order', () => {
    assert.deepEqual(gpuSlots({ PIFT_GPU_SLOTS: '4', PIFT_GPUS: '0,1,2,3,4,5,6,7' }), [
      { devices: '0,1' },
      { devices: '2,3' },
      { devices: '4,5' },
      { devices: '6,7' },
    ]);
    assert.deepEqual(gpuSlots({ PIFT_GPU_SLOTS: '2', CUDA_VISIBLE_DEVICES: '3, 5' }), [
      { devices: '3' },
      { devices: '5' },
    ]);
  });

  it('names the variable to fix when the GPUs cannot be split', () => {
    assert.throws(() => gpuSlots({ PIFT_GPU_SLOTS: '2' }), /set PIFT_GPUS/);
    assert.throws(() => gpuSlots({ PIFT_GPU_SLOTS: '3', PIFT_GPUS: '0,1,2,3' }), /does not divide the 4 GPUs/);
    assert.throws(() => gpuSlots({ PIFT_GPU_SLOTS: 'two' }), /PIFT_GPU_SLOTS must be a positive integer/);
  });
});
