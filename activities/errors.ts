/**
 * Bad user data (a malformed dataset line, a missing field, an impossible setting).
 * Retrying cannot fix it, so activity wrappers turn it into a non-retryable Temporal failure.
 * The message always names where the problem is: file, line and/or field.
 */
export class InvalidDataError extends Error {
  constructor(
    message: string,
    public readonly where: { file?: string; line?: number; field?: string } = {},
  ) {
    super(message);
    this.name = 'InvalidDataError';
  }
}
