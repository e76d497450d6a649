import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { PaymentEvent } from '../machines/payment.events.js';
import { initialSnapshot, persist, restore, step, type Effect, type PaymentSnapshot } from '../machines/payment.step.js';
import { viewOf, type SummaryState } from '../machines/payment.view.js';
import { effectJobId } from './job-id.js';
import { ignoreCheckedOutError } from './transaction.js';
import { queueOf } from './queues.js';

// The one path every state change takes. The pure machine decides; the new snapshot, its read model
// (src/machines/payment.view.ts), its journal row and the jobs for its effects commit together or not at all.
//
// Concurrency is optimistic rather than a held row lock: read the committed snapshot, decide, then
// write only if the version is still the one we read (compare-and-set), else read again and re-decide.
// The guarantee is the same as SELECT … FOR UPDATE (one writer per version; the journal's primary key
// (payment_id, seq) backs it up), but a transition costs two round trips instead of seven, and a
// replay — the common case under IPN retries and duplicate jobs — is a single read with no write.
// The snapshot this process last wrote is remembered, so the next event for the same payment can go
// straight to the compare-and-set; a stale copy only costs a lost compare-and-set and a re-read.

export interface ApplyOptions {
  /** Who sent the event, kept in the journal: ipn, reconcile, actor:<effect>, operator:<name>. */
  source: string;
}

export type ApplyResult =
  | { outcome: 'applied'; paymentId: string; version: number; state: SummaryState; effects: Effect[] }
  | { outcome: 'duplicate'; paymentId: string; version: number; state: SummaryState | null };

export interface Engine {
  applyEvent(paymentId: string, event: PaymentEvent, options: ApplyOptions): Promise<ApplyResult>;
}

interface Statement {
  name: string;
  text: string;
}

interface Known {
  version: number;
  state: SummaryState;
  snapshot: PaymentSnapshot;
}

interface Seen extends Known {
  /** The event already stepped on this snapshot (when it came from memory). */
  stepped?: ReturnType<typeof step>;
}

/** Least-recently-used snapshots by payment; an entry is only a guess, checked by the version compare-and-set. */
class RecentSnapshots {
  private readonly entries = new Map<string, Known>();
  constructor(private readonly max: number) {}
  get(paymentId: string): Known | undefined {
    return this.entries.get(paymentId);
  }
  remember(paymentId: string, known: Known): void {
    this.entries.delete(paymentId);
    this.entries.set(paymentId, known);
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
  }
  forget(paymentId: string): void {
    this.entries.delete(paymentId);
  }
}

interface Row {
  snapshot: unknown;
  version: number;
  state: SummaryState;
}

/** Far above what real traffic produces for one payment; reaching it means something is wrong. */
const MAX_ATTEMPTS = 100;

const JOURNAL_COLUMNS = '(payment_id, seq, event_type, event, source, from_state, to_state, effects)';

// Both statements write the payment row and its journal row in one statement: the journal insert only
// happens if the row write did, so `rowCount === 1` means "our version won".
const UPDATE_IF_VERSION = `
  WITH written AS (
    UPDATE payments
       SET snapshot = $2, version = $3, state = $4, state_value = $5, review_reason = $6,
           order_id = coalesce(order_id, $7), updated_at = now(),
           view = $14, step = $15, rank = $16, np_status = $17,
           state_entered_at = CASE WHEN $13 THEN now() ELSE state_entered_at END
     WHERE payment_id = $1 AND version = $3 - 1
    RETURNING payment_id)
  INSERT INTO payment_journal ${JOURNAL_COLUMNS}
  SELECT payment_id, $3, $8, $9, $10, $11, $5, $12 FROM written`;

const INSERT_IF_ABSENT = `
  WITH written AS (
    INSERT INTO payments (payment_id, snapshot, version, state, state_value, review_reason, order_id, view, step, rank, np_status)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $13, $14, $15, $16)
    ON CONFLICT (payment_id) DO NOTHING
    RETURNING payment_id)
  INSERT INTO payment_journal ${JOURNAL_COLUMNS}
  SELECT payment_id, $3, $8, $9, $10, $11, $5, $12 FROM written`;

export function createEngine(deps: { pool: pg.Pool; boss: PgBoss }): Engine {
  const { pool, boss } = deps;
  const recent = new RecentSnapshots(10_000);

  async function applyEvent(paymentId: string, event: PaymentEvent, options: ApplyOptions): Promise<ApplyResult> {
    for (let attempt = 1; ; attempt++) {
      const seen = await currentState(paymentId, event, attempt === 1);
      // The first event for an unknown payment creates its machine: no row is ever required beforehand.
      const current: PaymentSnapshot = seen ? seen.snapshot : initialSnapshot(paymentId);
      const { next, effects, changed } = seen?.stepped ?? step(current, event);
      if (!changed) {
        // A replay, a stale status, or a result for a step not reached: nothing to write.
        return { outcome: 'duplicate', paymentId, version: seen?.version ?? 0, state: seen?.state ?? null };
      }
      const version = (seen?.version ?? 0) + 1;
      const summary = viewOf(next);
      const params: unknown[] = [
        paymentId,
        persist(next),
        version,
        summary.state,
        JSON.stringify(next.value),
        summary.reviewReason,
        next.context.orderId,
        event.type,
        event,
        options.source,
        seen ? JSON.stringify(current.value) : null,
        JSON.stringify(effects),
      ];
      // state_entered_at moves only when the state value does (not on progress kept in context).
      if (seen) params.push(JSON.stringify(current.value) !== JSON.stringify(next.value));
      params.push(summary, summary.step, summary.rank, summary.np.status);
      // Named statements: Postgres parses and plans each once per connection, not once per event.
      const sql = seen ? { name: 'payment-update-if-version', text: UPDATE_IF_VERSION } : { name: 'payment-insert-if-absent', text: INSERT_IF_ABSENT };
      let won = false;
      try {
        won = effects.length === 0 ? await writeAlone(sql, params) : await writeWithJobs(sql, params, paymentId, effects);
      } finally {
        if (won) recent.remember(paymentId, { version, state: summary.state, snapshot: next });
        else recent.forget(paymentId);
      }
      if (won) return { outcome: 'applied', paymentId, version, state: summary.state, effects };
      // Another writer committed this version first: re-read and decide again on its result.
      if (attempt >= MAX_ATTEMPTS) throw new Error(`applyEvent: payment ${paymentId} kept changing under ${MAX_ATTEMPTS} attempts`);
    }
  }

  /**
   * The committed state to decide on. A snapshot this process committed (or read) last is tried first:
   * if the event changes it, the compare-and-set on its version proves it is still current, and the
   * read is saved. If the event changes nothing there, that proves nothing (the copy may be behind), so
   * the row is read.
   */
  async function currentState(paymentId: string, event: PaymentEvent, useRecent: boolean): Promise<Seen | null> {
    const known = useRecent ? recent.get(paymentId) : undefined;
    if (known) {
      const stepped = step(known.snapshot, event);
      if (stepped.changed) return { ...known, stepped };
    }
    const row = (await pool.query<Row>({ name: 'payment-read', text: 'SELECT snapshot, version, state FROM payments WHERE payment_id = $1', values: [paymentId] })).rows[0];
    if (!row) return null;
    const seen = { version: row.version, state: row.state, snapshot: restore(row.snapshot) };
    recent.remember(paymentId, seen);
    return seen;
  }

  async function writeAlone(sql: Statement, params: unknown[]): Promise<boolean> {
    return (await pool.query({ ...sql, values: params })).rowCount === 1;
  }

  /** State change and effect jobs in one transaction: pg-boss inserts the jobs through our client. */
  async function writeWithJobs(sql: Statement, params: unknown[], paymentId: string, effects: Effect[]): Promise<boolean> {
    const client = await pool.connect();
    // See inTransaction: a connection lost mid-transaction must fail this write, not the process.
    client.on('error', ignoreCheckedOutError);
    try {
      await client.query('BEGIN');
      if ((await client.query({ ...sql, values: params })).rowCount !== 1) {
        await client.query('ROLLBACK');
        return false;
      }
      const db = { executeSql: (text: string, values?: unknown[]) => client.query(text, values) };
      for (const { effect, attempt } of effects) {
        // Deterministic id: a second job for the same (payment, effect, attempt) is refused even after completion.
        await boss.send(queueOf(effect), { paymentId, effect, attempt }, { id: effectJobId(paymentId, effect, attempt), db });
      }
      await client.query('COMMIT');
      return true;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.off('error', ignoreCheckedOutError);
      client.release();
    }
  }

  return { applyEvent };
}
