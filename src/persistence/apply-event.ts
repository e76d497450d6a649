import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import type { EffectName, PaymentEvent } from '../machines/payment.events.js';
import { initialSnapshot, persist, restore, step, type Effect, type PaymentSnapshot } from '../machines/payment.step.js';
import { viewOf, type SummaryState } from '../machines/payment.view.js';
import { effectJobsJson, withMissingQueueNamed } from './effect-jobs.js';
import { effectJobId } from './job-id.js';
import { composeWrite, INSERT_IF_ABSENT, UPDATE_IF_VERSION, type RecordedWith, type WrittenAlongside } from './transition-statements.js';
import { ignoreCheckedOutError, type Queryable } from './transaction.js';
import type { AfterCommitWork, ApplyOptions, ApplyResult, EagerSlot, Engine, EngineDeps, InlineEffect, Refused, RidingWork, TransitionScope, Unrecorded } from './engine-contract.js';

// The engine's contract lives in engine-contract.ts; its users import it from here.
export type { AfterCommitWork, ApplyOptions, ApplyResult, EagerJobs, EagerSlot, Engine, EngineDeps, InlineEffect, Refused, RidingWork, TransitionScope, Unrecorded } from './engine-contract.js';

// The one path every state change takes. The pure machine decides; the new snapshot, its read model
// (src/machines/payment.view.ts), its journal row and the jobs for its effects commit together or not at all.
//
// Concurrency is optimistic rather than a held row lock: read the committed snapshot, decide, then
// write only if the version is still the one we read (compare-and-set), else read again and re-decide.
// The guarantee is the same as SELECT … FOR UPDATE (one writer per version; the journal's primary key
// (payment_id, seq) backs it up), but a transition costs two round trips instead of seven, and a
// replay — the common case under IPN retries and duplicate jobs — is a single read with no write.
// The snapshot this process last wrote is remembered, so the next event for the same payment can go
// straight to the compare-and-set; a stale copy only costs a lost compare-and-set, whose statement also
// answers the newer committed row it saw, so deciding again needs no read of its own.

interface Known {
  version: number;
  state: SummaryState;
  snapshot: PaymentSnapshot;
}

/** What to decide on: the committed payment (null: none, or guessed none), and the event already stepped on it when that was done to decide. */
interface Seen {
  seen: Known | null;
  stepped?: ReturnType<typeof step>;
}

interface Row {
  snapshot: unknown;
  version: number;
  state: SummaryState;
}

interface Written {
  /** Work for after the commit, from the inline effects that ran in this (engine-owned) transaction. */
  after: Array<{ effect: EffectName; work: AfterCommitWork }>;
  version: number;
  state: SummaryState;
  snapshot: PaymentSnapshot;
  effects: Effect[];
  alongside: string | null;
}

/** How writeTransition writes: a caller's row alongside, rows recorded with it, inline effects already queued, whose transaction. */
interface WriteHow {
  alongside: WrittenAlongside | undefined;
  recorded: RecordedWith | undefined;
  queued: ReadonlySet<EffectName>;
  /** The engine's own transaction (not a caller's): a failed 'queue' effect may roll it back whole. */
  ownTransaction: boolean;
  /** Eager slots taken for this attempt's jobs (EngineDeps.eager): run once committed, else given back. */
  held: Held[];
  /** Set when the compare-and-set lost: the newer committed payment the statement saw, if it saw one. */
  lostTo?: Known;
  /** Set when the compare-and-set lost: the value of the alongside's `seen` (WrittenAlongside.seen). */
  alongsideSeen?: unknown;
}

/** An eager slot and the job it was taken for; `inserted` once the write inserted that job claimed. */
interface Held {
  slot: EagerSlot;
  job: Parameters<EagerSlot['run']>[0];
  inserted: boolean;
}

/** A 'queue' inline effect failed in the engine's own transaction: roll back, decide again with it queued. */
class QueueInstead extends Error {
  constructor(
    readonly effect: EffectName,
    cause: unknown,
  ) {
    super(`inline effect ${effect} failed; it becomes a job`, { cause });
  }
}

/** One journal row: an event and what stepping it did. */
interface Entry {
  event: PaymentEvent;
  source: string;
  from: PaymentSnapshot | null;
  to: PaymentSnapshot;
  /** The effects of this step that became jobs. */
  effects: Effect[];
}

/** writeTransition: the gate of the rows recorded with the transition was closed, so nothing of the transition was written. */
const GATE_CLOSED = Symbol('gate closed');

/** Far above what real traffic produces for one payment; reaching it means something is wrong. */
const MAX_ATTEMPTS = 100;

export function createEngine(deps: EngineDeps): Engine {
  const { pool } = deps;
  const inline = deps.inline ?? {};
  // Least-recently-used snapshots by payment; an entry is only a guess, checked by the version compare-and-set.
  const recent = new LRUCache<string, Known>({ max: 10_000 });
  const isInline = (effect: EffectName) => inline[effect] !== undefined;

  async function applyEvent(paymentId: string, event: PaymentEvent, options: ApplyOptions): Promise<ApplyResult | Refused | Unrecorded> {
    const db: Queryable = options.tx ?? pool;
    // Inline effects that failed in an earlier attempt of the engine's own transaction: jobs from then on.
    const queued = new Set<EffectName>();
    // The caller's rows to record with the transition, until a statement committed them.
    let recorded = options.tx ? undefined : options.recordWith;
    if (options.recordWith && options.tx) return { outcome: 'unrecorded', paymentId, why: 'not one statement' };
    // The committed payment a lost compare-and-set saw: the next attempt decides on it without a read.
    let lostTo: Known | undefined;
    // What the alongside's `seen` answered in the last lost write (null: nothing), handed to a duplicate's caller.
    let alongsideSeen: unknown;
    for (let attempt = 1; ; attempt++) {
      const { seen, stepped } = await currentState(db, paymentId, event, attempt === 1, options.refuse, lostTo);
      lostTo = undefined;
      const refusal = options.refuse?.(seen?.snapshot ?? null);
      if (refusal) return { outcome: 'refused', paymentId, version: seen?.version ?? 0, state: seen?.state ?? null, reason: refusal };
      // The first event for an unknown payment creates its machine: no row is ever required beforehand.
      const first = stepped ?? step(seen ? seen.snapshot : initialSnapshot(paymentId), event);
      if (!first.changed) {
        if (recorded) return { outcome: 'unrecorded', paymentId, why: 'no change' };
        // A replay, a stale status, or a result for a step not reached: nothing to write.
        return { outcome: 'duplicate', paymentId, version: seen?.version ?? 0, state: seen?.state ?? null, ...(alongsideSeen !== undefined && { alongsideSeen }) };
      }
      if (recorded && (!seen || first.effects.length > 0)) return { outcome: 'unrecorded', paymentId, why: 'not one statement' };
      const base = seen?.version ?? 0;
      const entries: Entry[] = [{ event, source: options.source, from: seen?.snapshot ?? null, to: first.next, effects: first.effects }];
      let written: Written | null = null;
      let gateClosed = false;
      const held: Held[] = [];
      const how: WriteHow = { alongside: options.alongside, recorded, queued, ownTransaction: !options.tx, held };
      try {
        const write = async (tx: Queryable) => {
          const result = await writeTransition(tx, paymentId, base, entries, how);
          if (result === GATE_CLOSED) {
            gateClosed = true;
            return null;
          }
          return result;
        };
        if (first.effects.length === 0) written = await write(db);
        else if (options.tx) written = await inSavepoint(options.tx, first.effects.some((e) => isInline(e.effect)), write);
        else written = await inOwnTransaction(write);
      } catch (error) {
        if (!(error instanceof QueueInstead)) throw error;
        // Its transaction is rolled back whole; the transition is decided again with that effect a job.
        queued.add(error.effect);
        deps.onInlineQueued?.(paymentId, error.effect, error.cause);
        continue;
      } finally {
        if (written) recent.set(paymentId, { version: written.version, state: written.state, snapshot: written.snapshot });
        else recent.delete(paymentId);
        // Committed (`written` is set only then) and inserted claimed: this process runs it now.
        for (const { slot, job, inserted } of held) {
          if (written && inserted) slot.run(job);
          else slot.release();
        }
      }
      if (gateClosed) return { outcome: 'unrecorded', paymentId, why: 'gate closed' };
      // A plain statement (no transaction) committed the recorded rows, whatever its compare-and-set decided.
      recorded = undefined;
      if (written) {
        const { version, state, effects, alongside } = written;
        // Committed (only the engine's own transaction leaves work for after it).
        for (const { effect, work } of written.after) {
          await work(pool).catch((error: unknown) => deps.onAfterCommitFailed?.(paymentId, effect, error));
        }
        return { outcome: 'applied', paymentId, version, state, effects, ...(options.alongside && { alongside }) };
      }
      // Another writer committed this version first: decide again on its result (what the write saw, or a read).
      lostTo = how.lostTo;
      if (how.alongsideSeen !== undefined) alongsideSeen = how.alongsideSeen;
      if (attempt >= MAX_ATTEMPTS) throw new Error(`applyEvent: payment ${paymentId} kept changing under ${MAX_ATTEMPTS} attempts`);
    }
  }

  /**
   * Performs the inline effects the entries ask for (each result stepped at once, its own journal row),
   * then writes the payment at its final version with every journal row and every job, compare-and-set
   * on `base`. Null when another writer got there first (the caller's transaction is then rolled back,
   * so an inline effect's writes go with it).
   */
  async function writeTransition(tx: Queryable, paymentId: string, base: number, entries: Entry[], how: WriteHow): Promise<Written | null | typeof GATE_CLOSED> {
    const { alongside, recorded, queued, ownTransaction, held } = how;
    let snapshot = entries[0]!.to;
    const jobs: Effect[] = [];
    // Each effect with the journal row whose step asked for it: that row lists the ones that became jobs.
    let pending = entries[0]!.effects.map((effect) => ({ effect, entry: entries[0]! }));
    entries[0]!.effects = [];
    const queue = (effect: Effect, entry: Entry) => {
      jobs.push(effect);
      entry.effects.push(effect);
    };
    // Work the inline effects left for after the engine's own transaction commits (TransitionScope.afterCommit).
    const after: Written['after'] = [];
    // Work for the end of the engine's own transaction, its first statement riding in the write (TransitionScope.ride).
    const riders: Array<{ effect: Effect; spec: InlineEffect; rider: RidingWork }> = [];
    const reads = new Map<string, unknown>();
    while (pending.length > 0) {
      const { effect, entry } = pending.shift()!;
      const spec = queued.has(effect.effect) ? undefined : inline[effect.effect];
      if (!spec) {
        queue(effect, entry);
        continue;
      }
      let result: PaymentEvent | null;
      if (ownTransaction) {
        const scope: TransitionScope = {
          afterCommit: (work) => void after.push({ effect: effect.effect, work }),
          ride: (rider) => void riders.push({ effect, spec, rider }),
          reads,
        };
        result = spec.onError === 'fail' ? await spec.perform(tx, snapshot, scope) : await performOrThrow(effect, () => spec.perform(tx, snapshot, scope));
      } else {
        // The caller commits: the effect does all its work in the caller's transaction, in the same savepoint.
        const perform = () => spec.perform(tx, snapshot, { afterCommit: null, ride: null, reads });
        result = spec.onError === 'fail' ? await perform() : await performOrQueue(tx, paymentId, effect, perform);
      }
      if (result === null) {
        queue(effect, entry);
        continue;
      }
      const stepped = step(snapshot, result);
      if (!stepped.changed) continue;
      const next: Entry = { event: result, source: `actor:${effect.effect}`, from: snapshot, to: stepped.next, effects: [] };
      entries.push(next);
      snapshot = stepped.next;
      pending = [...pending, ...stepped.effects.map((e) => ({ effect: e, entry: next }))];
    }

    const version = base + entries.length;
    const summary = viewOf(snapshot);
    const first = entries[0]!;
    const params: unknown[] = [
      paymentId,
      persist(snapshot),
      version,
      summary.state,
      JSON.stringify(snapshot.value),
      summary.reviewReason,
      snapshot.context.orderId,
      JSON.stringify(
        entries.map((e, i) => ({ seq: base + i + 1, event_type: e.event.type, event: e.event, source: e.source, from_state: e.from?.value ?? null, to_state: e.to.value, effects: e.effects })),
      ),
      summary,
      summary.step,
      summary.rank,
      summary.np.status,
    ];
    // state_entered_at moves only when the state value does (not on progress kept in context).
    if (first.from) params.push(base, JSON.stringify(first.from.value) !== JSON.stringify(snapshot.value));
    // Named statements: Postgres parses and plans each once per connection, not once per event.
    const sql = first.from ? UPDATE_IF_VERSION : INSERT_IF_ABSENT;
    // The jobs, the caller's row and the riders' SQL ride in the same statement, written (or
    // evaluated) only if the transition is; recorded rows ride in it whatever the compare-and-set decides.
    const statement = composeWrite(sql, { jobs: jobs.length > 0, alongside, recorded, riders: riders.map((r) => r.rider) }, params.length + 1);
    // Only the engine's own transaction hands jobs to this process: it alone sees the commit.
    const eager = ownTransaction && deps.eager ? jobs.map((job) => deps.eager!.take(job.effect)) : [];
    eager.forEach((slot, i) => {
      const { effect, attempt } = jobs[i]!;
      if (slot) held.push({ slot, job: { id: effectJobId(paymentId, effect, attempt), paymentId, effect, attempt }, inserted: false });
    });
    const values = [
      ...params,
      ...(jobs.length > 0 ? [effectJobsJson(paymentId, jobs, eager.map(Boolean))] : []),
      ...(alongside?.values ?? []),
      ...(recorded?.values ?? []),
      ...riders.flatMap((r) => r.rider.values),
    ];
    const result = await withMissingQueueNamed(jobs, () =>
      tx.query<Record<string, unknown> & { journal_rows: number; alongside_id: string | null; seen: Row | null; gate_open?: boolean; eager_ids?: string[] | null }>({ ...statement, values }),
    );
    const row = result.rows[0]!;
    if (recorded && !row.gate_open) return GATE_CLOSED;
    if (row.journal_rows === 0) {
      if (alongside?.seen) how.alongsideSeen = row.alongside_seen;
      // Only a version newer than the one tried says who won; an older one is the statement's snapshot from before that commit.
      if (row.seen && row.seen.version > base) how.lostTo = { version: row.seen.version, state: row.seen.state, snapshot: restore(row.seen.snapshot) };
      return null;
    }
    const claimed = new Set(row.eager_ids ?? []);
    for (const h of held) h.inserted = claimed.has(h.job.id);
    // Their SQL ran in the write; the rest of their work follows, last in the transaction.
    for (const [i, { effect, spec, rider }] of riders.entries()) {
      const then = () => rider.then(row[`rider_${i}`], tx);
      if (spec.onError === 'fail') await then();
      else await performOrThrow(effect, then);
    }
    return { version, state: summary.state, snapshot, effects: jobs, alongside: row.alongside_id, after };
  }

  /**
   * The committed state to decide on. A snapshot this process committed (or read) last is tried first:
   * if the event changes it, the compare-and-set on its version proves it is still current, and the
   * read is saved. If the event changes nothing there, that proves nothing (the copy may be behind), so
   * the row is read. A payment this process does not remember, for an event that would create it (a
   * first IPN), is guessed new: the insert only writes if no row exists (compare-and-set on absence),
   * so a wrong guess writes nothing and the next attempt decides on the row the insert found (below);
   * the right one saves the read.
   * After a lost compare-and-set, the committed row that write saw (`lostTo`) is as good as a read: it was
   * committed before a statement that started after this event arrived.
   */
  async function currentState(db: Queryable, paymentId: string, event: PaymentEvent, useRecent: boolean, refuse: ApplyOptions['refuse'], lostTo?: Known): Promise<Seen> {
    if (lostTo) {
      recent.set(paymentId, lostTo);
      return { seen: lostTo };
    }
    const known = useRecent ? recent.get(paymentId) : undefined;
    if (known) {
      const stepped = step(known.snapshot, event);
      if (stepped.changed) return { seen: known, stepped };
    } else if (useRecent && !refuse?.(null)) {
      const stepped = step(initialSnapshot(paymentId), event);
      if (stepped.changed) return { seen: null, stepped };
    }
    const row = (await db.query<Row>({ name: 'payment-read', text: 'SELECT snapshot, version, state FROM payments WHERE payment_id = $1', values: [paymentId] })).rows[0];
    if (!row) return { seen: null };
    const seen = { version: row.version, state: row.state, snapshot: restore(row.snapshot) };
    recent.set(paymentId, seen);
    return { seen };
  }

  /**
   * In the engine's own transaction an inline effect whose failure makes it a job needs no savepoint
   * (two round trips on every payment that has one): its failure rolls the whole transaction back and
   * the transition is decided again with the effect queued (applyEvent), routing and all redone.
   */
  async function performOrThrow<T>(effect: Effect, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw new QueueInstead(effect.effect, error);
    }
  }

  /** In a caller's transaction, an inline effect whose failure makes it a job: null when it failed (its writes taken back to a savepoint). */
  async function performOrQueue(tx: Queryable, paymentId: string, effect: Effect, perform: () => Promise<PaymentEvent>): Promise<PaymentEvent | null> {
    await tx.query('SAVEPOINT inline_effect');
    try {
      const result = await perform();
      await tx.query('RELEASE SAVEPOINT inline_effect');
      return result;
    } catch (error) {
      await tx.query('ROLLBACK TO SAVEPOINT inline_effect');
      deps.onInlineQueued?.(paymentId, effect.effect, error);
      return null;
    }
  }

  /** The state change, its inline effects and its jobs in one transaction of the engine's own. */
  async function inOwnTransaction<T>(work: (tx: Queryable) => Promise<T | null>): Promise<T | null> {
    const client = await pool.connect();
    // See inTransaction: a connection lost mid-transaction must fail this write, not the process.
    client.on('error', ignoreCheckedOutError);
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query(result === null ? 'ROLLBACK' : 'COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.off('error', ignoreCheckedOutError);
      client.release();
    }
  }

  /**
   * In the caller's transaction. A lost compare-and-set writes nothing by itself; only an inline effect
   * (which writes before it) needs a savepoint to take its writes back before deciding again.
   */
  async function inSavepoint<T>(tx: pg.PoolClient, needed: boolean, work: (tx: Queryable) => Promise<T | null>): Promise<T | null> {
    if (!needed) return work(tx);
    await tx.query('SAVEPOINT apply_event');
    try {
      const result = await work(tx);
      await tx.query(result === null ? 'ROLLBACK TO SAVEPOINT apply_event' : 'RELEASE SAVEPOINT apply_event');
      return result;
    } catch (error) {
      await tx.query('ROLLBACK TO SAVEPOINT apply_event').catch(() => {});
      throw error;
    }
  }

  return { applyEvent } as Engine;
}
