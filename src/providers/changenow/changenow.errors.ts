// Every failure of the ChangeNow client is one ChangeNowError, so the payout actor decides with two
// fields: `kind` says what happened, `retryable` whether the same call may be repeated later.
//
//   unavailable  5xx, 429, network failure        retryable
//   timeout      no answer within timeoutMs        retryable (for createExchange: see the client)
//   rejected     4xx other than 429, bad input     not retryable: the same request gets the same no
//   bad_answer   2xx/3xx we cannot understand      not retryable: ChangeNow changed or misbehaves; review
//
// The error carries no request, no headers, no cause object: only text the client built itself, with
// the API key removed. Whatever ends up in a log, a journal row or a dead-letter reason is safe.

export type ChangeNowErrorKind = 'unavailable' | 'rejected' | 'timeout' | 'bad_answer';

export interface ChangeNowErrorFields {
  kind: ChangeNowErrorKind;
  retryable: boolean;
  /** HTTP status, when an answer arrived. */
  status?: number;
  /** ChangeNow's `error` field (e.g. 'out_of_range', 'not_valid_params'), or ours for local checks. */
  code?: string;
}

export class ChangeNowError extends Error {
  readonly kind: ChangeNowErrorKind;
  readonly retryable: boolean;
  readonly status?: number;
  readonly code?: string;

  constructor(message: string, fields: ChangeNowErrorFields) {
    super(message);
    this.name = 'ChangeNowError';
    this.kind = fields.kind;
    this.retryable = fields.retryable;
    if (fields.status !== undefined) this.status = fields.status;
    if (fields.code !== undefined) this.code = fields.code;
  }

  /** What JSON.stringify writes (an Error's message is not enumerable, so it would be lost otherwise). */
  toJSON(): ChangeNowErrorFields & { name: string; message: string } {
    const out: ChangeNowErrorFields & { name: string; message: string } = {
      name: this.name,
      message: this.message,
      kind: this.kind,
      retryable: this.retryable,
    };
    if (this.status !== undefined) out.status = this.status;
    if (this.code !== undefined) out.code = this.code;
    return out;
  }
}

export function isChangeNowError(error: unknown): error is ChangeNowError {
  return error instanceof ChangeNowError;
}
