import type { Logger } from 'pino';
import type { EffectName, PaymentEvent } from '../machines/payment.events.js';
import type { Queryable } from '../persistence/transaction.js';

/** What every effect job carries: the payment, the effect, and which attempt of it (bumped by operator retries). */
export interface EffectJob {
  paymentId: string;
  effect: EffectName;
  attempt: number;
}

export interface EffectContext {
  signal: AbortSignal;
  log: Logger;
  jobId: string;
  retryCount: number;
  /**
   * Given by the effect runner. A fact the actor would commit on its own right after its last outside
   * call (the invite's "sent") is handed over instead: the runner writes it with the result and the
   * transition, so the three commit together (in one statement when the transition is one). If that
   * fails, the runner writes the fact alone first, then the result, then applies it: the fact never
   * depends on the transition. Without it (an actor called directly) the actor commits the fact itself.
   */
  withResult?: (fact: ResultFact) => void;
}

/** A fact handed to the runner (EffectContext.withResult): a write of its own, and the same write as a CTE. */
export interface ResultFact {
  write(db: Queryable): Promise<unknown>;
  /** Names the statements it is part of. */
  name: string;
  /** The write as the body of a CTE (an UPDATE/INSERT, no trailing semicolon), parameters numbered from $first. */
  sql(first: number): string;
  values: unknown[];
}

/**
 * An actor performs one effect and describes its outcome as the event to apply to the payment.
 * perform must be idempotent at its own step level (look up / persist before acting on the outside
 * world): the runner guarantees the *result* is applied once, but a crash mid-perform repeats perform.
 */
export interface EffectActor {
  effect: EffectName;
  perform(job: EffectJob, context: EffectContext): Promise<PaymentEvent>;
}
