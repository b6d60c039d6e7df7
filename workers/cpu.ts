/** CPU worker (`npm run worker:cpu`): the workflow plus scoring, segmentation and judging, on queue pift-cpu. */
import { main } from './run-worker';

main('cpu');
