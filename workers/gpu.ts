/** GPU worker (`npm run worker:gpu`): training and generation on queue pift-gpu; one process per GPU (CUDA_VISIBLE_DEVICES). */
import { main } from './run-worker';

main('gpu');
