export * from './judge-prompt';
export * from '../results/parse-verdict';
export * from '../results/verdict';
export * from '../results/win-rate';
export * from './offline-reference-judge';
export * from '../results/report';
export * from '../results/statistics';
