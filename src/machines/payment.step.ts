import { createActor, type ActorScope, type ExecutableActionObject, type SnapshotFrom } from 'xstate';
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

// XState 5's pure helpers (transition, initialTransition) build a throwaway actor on every call, and that
// actor's constructor runs the machine's whole initial transition: about 125 µs per step here, more
// than the step itself. (XState 6 makes that scope lazy.) The machine invokes and spawns nothing, so one
// inert scope serves every call of this process: its system never holds a child, and the actions a
// step decides are collected into a list of that call's own (steps are synchronous).
let collecting: ExecutableActionObject[] | null = null;
const self = createActor(paymentMachine, { input: { paymentId: '' } });
const scope: ActorScope<PaymentSnapshot, PaymentEvent> = {
  self,
  id: '',
  sessionId: '',
  system: self.system,
  logger: () => {},
  defer: () => {},
  emit: () => {},
  stopChild: () => {},
  actionExecutor: (action) => {
    collecting?.push(action);
  },
};

function collect<T>(run: () => T): [T, ExecutableActionObject[]] {
  const actions: ExecutableActionObject[] = [];
  collecting = actions;
  try {
    return [run(), actions];
  } finally {
    collecting = null;
  }
}

export function initialSnapshot(paymentId: string): PaymentSnapshot {
  // The initial state has no entry effects; the first real event does the work.
  return paymentMachine.getInitialSnapshot(scope, { paymentId });
}

/** Persisted JSON cannot be fed to a transition directly: the machine revives it (state nodes, history). */
export function restore(persisted: unknown): PaymentSnapshot {
  return paymentMachine.restoreSnapshot(persisted as ReturnType<typeof persist>, scope) as PaymentSnapshot;
}

export function persist(snapshot: PaymentSnapshot) {
  return paymentMachine.getPersistedSnapshot(snapshot);
}

export function step(snapshot: PaymentSnapshot, event: PaymentEvent): StepResult {
  const [next, actions] = collect(() => paymentMachine.transition(snapshot, event, scope));
  const effects = actions
    .filter((a) => typeof a.type === 'string' && a.type.startsWith('effect.'))
    .map((a) => {
      const params = a.params as EffectParams;
      return { effect: params.effect, attempt: params.attempt };
    });
  return { next, effects, changed: next !== snapshot || effects.length > 0 };
}
