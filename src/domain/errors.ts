// The few ways a feature can say "no". Features throw these; each surface translates them once:
// src/http/plugins/error-handler.ts into status codes, the bot into chat messages, the CLI into exit
// codes, the effect runner into "retry" or "dead letter" through `retryable`. No feature needs to know
// which surface called it.

export type DomainErrorKind = 'invalid' | 'not_found' | 'conflict' | 'unavailable' | 'not_configured' | 'failed';

export abstract class DomainError extends Error {
  abstract readonly kind: DomainErrorKind;
  /** Whether trying the same thing again later can succeed (provider outage) or not (bad input, bad config). */
  abstract readonly retryable: boolean;
}

export interface FieldProblem {
  field: string;
  message: string;
}

/** Input that breaks a rule; each problem names its field ("plans.0.price_usd"). */
export class InvalidInputError extends DomainError {
  readonly kind = 'invalid';
  readonly retryable = false;
  override name = 'InvalidInputError';
  constructor(public readonly problems: FieldProblem[]) {
    super(problems.map((p) => (p.field ? `${p.field}: ${p.message}` : p.message)).join('; '));
  }

  static field(field: string, message: string): InvalidInputError {
    return new InvalidInputError([{ field, message }]);
  }
}

export class NotFoundError extends DomainError {
  readonly kind = 'not_found';
  readonly retryable = false;
  override name = 'NotFoundError';
}

/** The request contradicts what exists (a duplicate, or an action the current state does not allow). */
export class ConflictError extends DomainError {
  readonly kind = 'conflict';
  readonly retryable = false;
  override name = 'ConflictError';
}

/** A provider (NowPayments, Telegram, ChangeNow, the chain) did not do what was asked. */
export class ProviderUnavailableError extends DomainError {
  readonly kind = 'unavailable';
  override name = 'ProviderUnavailableError';
  constructor(
    public readonly provider: string,
    message: string,
    public readonly retryable = true,
  ) {
    super(message);
  }
}

/** Something the operator must configure first (a missing key, a channel that does not exist). */
export class NotConfiguredError extends DomainError {
  readonly kind = 'not_configured';
  readonly retryable = false;
  override name = 'NotConfiguredError';
}

/** An effect that cannot succeed by being retried (a bug or bad data): its job goes straight to review. */
export class PermanentFailure extends DomainError {
  readonly kind = 'failed';
  readonly retryable = false;
  override name = 'PermanentFailure';
}

/** Retry unless the error says it cannot help; unknown errors (database blips, timeouts) are retried. */
export function isRetryable(error: unknown): boolean {
  if (error && typeof error === 'object' && 'retryable' in error && typeof error.retryable === 'boolean') return error.retryable;
  return true;
}
