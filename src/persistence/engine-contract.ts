import type pg from 'pg';
import type { EffectName, PaymentEvent } from '../machines/payment.events.js';
import type { Effect, PaymentSnapshot } from '../machines/payment.step.js';
import type { SummaryState } from '../machines/payment.view.js';
import type { RecordedWith, WrittenAlongside } from './transition-statements.js';
import type { Queryable } from './transaction.js';

// What the engine (persistence/apply-event.ts) promises and asks: how an event is applied and what it
// answers, and the contract of an effect performed inside a transition (InlineEffect).

export interface ApplyOptions {
  /** Who sent the event, kept in the journal: ipn, reconcile, actor:<effect>, operator:<name>. */
  source: string;
  /** Apply inside this transaction (the caller commits or rolls back); by default the engine uses its own. */
  tx?: pg.PoolClient;
  /**
   * A reason the event must not touch this payment as it stands, checked on the committed snapshot the
   * decision is made on (null: no payment yet). The event is then neither applied nor written.
   */
  refuse?: (snapshot: PaymentSnapshot | null) => string | null;
  /** A row of the caller's written by the transition's own statement, only if the transition is written. */
  alongside?: WrittenAlongside;
  /**
   * Rows of the caller's recorded by the statement that writes the transition, whatever its
   * compare-and-set decides (an effect's result and its actor's fact: src/actors/runner.ts). Only when
   * that statement is the whole transition: an existing payment, no jobs, no inline effect, no caller's
   * transaction. Otherwise — and when the event changes nothing, or the gate is closed — the outcome is
   * 'unrecorded' and nothing of the transition is written: the caller records its rows itself and
   * applies the event again. Once recorded, a lost compare-and-set is decided again as usual.
   */
  recordWith?: RecordedWith;
}

export type ApplyResult =
  | {
      outcome: 'applied';
      paymentId: string;
      version: number;
      state: SummaryState;
      effects: Effect[];
      /** With `alongside`: the id its insert returned, null when it inserted nothing (ON CONFLICT). */
      alongside?: string | null;
    }
  | {
      outcome: 'duplicate';
      paymentId: string;
      version: number;
      state: SummaryState | null;
      /**
       * With `alongside` that has `seen`: its value, when a write statement of this call lost and so
       * evaluated it (null: it found nothing); absent when no write was tried.
       */
      alongsideSeen?: unknown;
    };

export interface Refused {
  outcome: 'refused';
  paymentId: string;
  version: number;
  state: SummaryState | null;
  reason: string;
}

/** recordWith could not ride in the transition's statement (see ApplyOptions.recordWith): nothing was written. */
export interface Unrecorded {
  outcome: 'unrecorded';
  paymentId: string;
  why: 'no change' | 'not one statement' | 'gate closed';
}

export interface Engine {
  applyEvent(paymentId: string, event: PaymentEvent, options: Omit<ApplyOptions, 'refuse' | 'tx'> & { recordWith: RecordedWith }): Promise<ApplyResult | Unrecorded>;
  applyEvent(paymentId: string, event: PaymentEvent, options: ApplyOptions & { refuse: NonNullable<ApplyOptions['refuse']> }): Promise<ApplyResult | Refused>;
  applyEvent(paymentId: string, event: PaymentEvent, options: Omit<ApplyOptions, 'refuse'>): Promise<ApplyResult>;
}

/**
 * An effect decided from our own tables alone (no outside world), inside the transaction that makes
 * the transition asking for it: its result event is stepped at once and the journal rows commit
 * together. Routing is one (it reads the order, channel and plan and claims the order), the threshold
 * owner's ledger credit another.
 *
 * onError says what its failure means. 'fail': the transition fails with it (routing: nothing after it
 * can run without a route; the sender retries). 'queue': its writes are taken back and it is queued as
 * a job instead, so a ledger fault never holds the invite decided in the same step (in the engine's own
 * transaction by rolling it all back and deciding again with the effect queued, which costs nothing
 * until it happens; in a caller's transaction, to a savepoint).
 */
export interface InlineEffect {
  perform(tx: Queryable, snapshot: PaymentSnapshot, transition: TransitionScope): Promise<PaymentEvent>;
  onError: 'fail' | 'queue';
}

/** What the inline effects of one transition share (InlineEffect.perform). */
export interface TransitionScope {
  /**
   * Hands the engine work to run once the transition committed, on the pool, before applyEvent returns
   * (it may be handed over from riding work's `then` too): a check that must see this transaction's writes and
   * every other committed one (the threshold claim, when its lock was busy) runs there without holding
   * the transaction open. Null in a caller's transaction, whose commit the engine does not see: the
   * effect then does that work in the transaction. Its failure is reported
   * (EngineDeps.onAfterCommitFailed), never the transition's, which is committed: the work must be one
   * a periodic sweep also does.
   */
  afterCommit: ((work: AfterCommitWork) => void) | null;
  /**
   * Work for the end of the engine's own transaction whose first statement rides in the statement
   * that writes the transition, after the payment, its journal and its jobs (no round trip of its own:
   * the threshold check, src/actors/payouts/accumulate.actor.ts). That statement is the transaction's
   * last before the commit, so a lock the ridden SQL takes is held for one statement and the commit,
   * not for the rest of the transition; `then` runs right after it and fails like the effect itself.
   * Null in a caller's transaction, whose end the engine does not see: the effect does that work itself.
   */
  ride: ((work: RidingWork) => void) | null;
  /**
   * Rows an earlier inline effect of this transition read, in this transaction, keyed by what they
   * are (routing reads the channel; the owner's credit needs it again): a round trip saved, and one
   * read of the row for the whole decision. Lives for one attempt of the transition.
   */
  reads: Map<string, unknown>;
}

/**
 * A scalar SQL expression evaluated by the statement that writes the transition, only when that
 * statement writes it (its compare-and-set won), then `then`, in the transaction, given its value. A failure of the
 * expression fails that statement, and so the transition (its sender retries): only SQL that fails
 * no more often than the write itself belongs here.
 */
export interface RidingWork {
  /** Names the combined prepared statement: one name per `sql` text. */
  name: string;
  /** The expression, its parameters numbered from $first. */
  sql(first: number): string;
  values: unknown[];
  then(value: unknown, tx: Queryable): Promise<void>;
}
export type AfterCommitWork = (pool: pg.Pool) => Promise<unknown>;

/**
 * Eager dispatch: a job the engine's own transaction creates may be run by this process right after
 * the commit instead of waiting for a worker to fetch it (src/actors/eager-jobs.ts), as a workflow
 * engine hands an activity straight back to the worker that scheduled it. The job is inserted claimed
 * ('active', src/persistence/effect-jobs.ts) only when a slot was taken for it, and handed over only
 * once committed; everything after that — heartbeats, settling, retries, recovery from a crash — is
 * pg-boss's, as for a job a worker fetched.
 */
export interface EagerJobs {
  /** A local slot for a job of this effect, or null (no local runner for it, at capacity, stopping). */
  take(effect: EffectName): EagerSlot | null;
}

export interface EagerSlot {
  /** The job committed, claimed for this process: run it (in the background; applyEvent does not wait). */
  run(job: { id: string; paymentId: string; effect: EffectName; attempt: number }): void;
  /** No job committed for this slot (rolled back, compare-and-set lost, the job existed already): give it back. */
  release(): void;
}

export interface EngineDeps {
  pool: pg.Pool;
  /** This process's runner for jobs its own transitions create (eager dispatch); without it every job waits for a worker. */
  eager?: EagerJobs;
  /** Effects performed inside the transition's transaction instead of as a job. */
  inline?: Partial<Record<EffectName, InlineEffect>>;
  /** Told when an inline effect with onError 'queue' failed and became a job. */
  onInlineQueued?: (paymentId: string, effect: EffectName, error: unknown) => void;
  /** Told when work an inline effect left for after the commit (TransitionScope.afterCommit) failed. */
  onAfterCommitFailed?: (paymentId: string, effect: EffectName, error: unknown) => void;
}
