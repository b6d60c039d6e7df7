export * from './judge-prompt';
export * from './parse-verdict';
export * from './verdict';
export * from './win-rate';
export * from './offline-reference-judge';
export * from './report';
export * from './statistics';
