export * from './score-prompt';
export * from './parse-score';
export * from './offline-heuristic-scorer';
