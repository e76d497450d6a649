import type { Logger } from 'pino';
import type { EffectName, PaymentEvent } from '../machines/payment.events.js';

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
