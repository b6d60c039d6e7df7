// Constraints the workflow input and the trainer config share, so a value the input accepts is one the trainer
// accepts. Each call builds a fresh schema: the input schema annotates its copy with a default and a description.
import { Type } from '@sinclair/typebox';
import { stringEnum } from './define';
import { MIN_MAX_LENGTH, SCHEDULERS } from './constants';

export const positiveInt = () => Type.Integer({ minimum: 1 });
export const maxLength = () => Type.Integer({ minimum: MIN_MAX_LENGTH });
export const learningRate = () => Type.Number({ exclusiveMinimum: 0 });
export const weightDecay = () => Type.Number({ minimum: 0 });
/** Adam betas and the warmup ratio: the trainer refuses 1. */
export const unitInterval = () => Type.Number({ minimum: 0, exclusiveMaximum: 1 });
export const maxGradNorm = () => Type.Number({ exclusiveMinimum: 0 });
export const saveEveryMinutes = () => Type.Number({ exclusiveMinimum: 0 });
export const scheduler = () => stringEnum(SCHEDULERS);
export const seed = () => Type.Integer();
