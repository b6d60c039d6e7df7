// Constraints the workflow input and the trainer config share, so a value the input accepts is one the trainer
// accepts. Each call builds a fresh schema: the input schema annotates its copy with a default and a description.
import { Type } from '@sinclair/typebox';
import { stringEnum } from './define';
import { MIN_MAX_LENGTH, SCHEDULERS } from './constants';

// Upper bounds are far above any real value and far below what would overflow a step count or fill a disk: a typo
// (`1e12` epochs) fails here, not after the first paid request.
/** A count; by default at most 2^31 - 1, what the trainer's integer settings hold. */
export const positiveInt = (maximum = 2 ** 31 - 1) => Type.Integer({ minimum: 1, maximum });
/** Tokens per sequence: 2^20 is beyond every released model's context. */
export const maxLength = () => Type.Integer({ minimum: MIN_MAX_LENGTH, maximum: 2 ** 20 });
export const learningRate = () => Type.Number({ exclusiveMinimum: 0, maximum: 1 });
export const weightDecay = () => Type.Number({ minimum: 0, maximum: 10 });
/** Adam betas and the warmup ratio: the trainer refuses 1. */
export const unitInterval = () => Type.Number({ minimum: 0, exclusiveMaximum: 1 });
export const maxGradNorm = () => Type.Number({ exclusiveMinimum: 0, maximum: 1e6 });
export const scheduler = () => stringEnum(SCHEDULERS);
export const seed = () => Type.Integer();
