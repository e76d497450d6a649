import { createActor, initialTransition, transition, type SnapshotFrom } from 'xstate';
import type { EffectName, PaymentEvent } from './payment.events.js';
import { paymentMachine, type EffectParams } from './payment.machine.js';

// The pure step the engine runs between reading a payment's snapshot and its compare-and-set write: snapshot + event -> next snapshot + effects.

export type PaymentSnapshot = SnapshotFrom<typeof paymentMachine>;
export type PersistedPayment = ReturnType<typeof persist>;

export interface Effect {
  effect: EffectName;
  attempt: number;
}

export interface StepResult {
  next: PaymentSnapshot;
  effects: Effect[];
  /** false when the event did not apply in this state: a replay, a stale status, or an early result. */
  changed: boolean;
}

export function initialSnapshot(paymentId: string): PaymentSnapshot {
  // The initial state has no entry effects; the first real event does the work.
  const [snapshot] = initialTransition(paymentMachine, { paymentId });
  return snapshot;
}

/** Persisted JSON cannot be fed to transition() directly; an unstarted actor rehydrates it. */
export function restore(persisted: unknown): PaymentSnapshot {
  // input is only read when there is no snapshot; it is required by the type, not used here.
  return createActor(paymentMachine, { snapshot: persisted as PaymentSnapshot, input: { paymentId: '' } }).getSnapshot();
}

export function persist(snapshot: PaymentSnapshot) {
  return paymentMachine.getPersistedSnapshot(snapshot);
}

export function step(snapshot: PaymentSnapshot, event: PaymentEvent): StepResult {
  const [next, actions] = transition(paymentMachine, snapshot, event);
  const effects = actions
    .filter((a) => typeof a.type === 'string' && a.type.startsWith('effect.'))
    .map((a) => {
      const params = a.params as EffectParams;
      return { effect: params.effect, attempt: params.attempt };
    });
  return { next, effects, changed: next !== snapshot || effects.length > 0 };
}
