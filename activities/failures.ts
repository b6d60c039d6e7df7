import { ApplicationFailure } from '@temporalio/common';
import { InvalidDataError } from './errors';

/** Bad data fails the run at once with a message naming the file, line or field; everything else is retried. */
export async function withDataErrorsAsFailures<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof InvalidDataError)
      throw ApplicationFailure.nonRetryable(err.message, 'InvalidDataError', err.where);
    throw err;
  }
}
