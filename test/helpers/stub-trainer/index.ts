import { join } from 'node:path';

/**
 * PIFT_PYTHON for a worker whose trainer is the stub beside this file: the same stdout protocol, checkpoint and
 * final folders as the real trainer's, in milliseconds and without torch. For tests of the workflow's shape; what
 * the real trainer learns, saves and resumes is tested in trainer/tests, the end-to-end run and the resume tests.
 */
export const STUB_PYTHON = join(__dirname, 'python');

export const stubTrainerEnv = (): NodeJS.ProcessEnv => ({ PIFT_PYTHON: STUB_PYTHON });
