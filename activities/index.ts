export { createCpuActivities } from './cpu';
export { createGpuActivities } from './gpu';
export { depsFromEnv, type ActivityDeps } from './deps';
export * from './types';
