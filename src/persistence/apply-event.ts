import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { PaymentEvent } from '../machines/payment.events.js';
import { initialSnapshot, persist, restore, step, type Effect, type PaymentSnapshot } from '../machines/payment.step.js';
import { summarize, type SummaryState } from '../machines/payment.summary.js';
import { effectJobId } from './job-id.js';
import { queueOf } from './queues.js';

// The one path every state change takes (ARCHITECTURE.md). The pure machine decides; the new snapshot,
// its journal row and the jobs for its effects commit together or not at all.
//
// Concurrency is optimistic rather than a held row lock: read the committed snapshot, decide, then
// write only if the version is still the one we read (compare-and-set), else read again and re-decide.
// The guarantee is the same as SELECT … FOR UPDATE (one writer per version; the journal's primary key
// (payment_id, seq) backs it up), but a transition costs two round trips instead of seven, and a
// replay — the common case under IPN retries and duplicate jobs — is a single read with no write.

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
           state_entered_at = CASE WHEN $13 THEN now() ELSE state_entered_at END
     WHERE payment_id = $1 AND version = $3 - 1
    RETURNING payment_id)
  INSERT INTO payment_journal ${JOURNAL_COLUMNS}
  SELECT payment_id, $3, $8, $9, $10, $11, $5, $12 FROM written`;

const INSERT_IF_ABSENT = `
  WITH written AS (
    INSERT INTO payments (payment_id, snapshot, version, state, state_value, review_reason, order_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (payment_id) DO NOTHING
    RETURNING payment_id)
  INSERT INTO payment_journal ${JOURNAL_COLUMNS}
  SELECT payment_id, $3, $8, $9, $10, $11, $5, $12 FROM written`;

export function createEngine(deps: { pool: pg.Pool; boss: PgBoss }): Engine {
  const { pool, boss } = deps;

  async function applyEvent(paymentId: string, event: PaymentEvent, options: ApplyOptions): Promise<ApplyResult> {
    for (let attempt = 1; ; attempt++) {
      const row = (await pool.query<Row>({ name: 'payment-read', text: 'SELECT snapshot, version, state FROM payments WHERE payment_id = $1', values: [paymentId] })).rows[0];
      // The first event for an unknown payment creates its machine: no row is ever required beforehand.
      const current: PaymentSnapshot = row ? restore(row.snapshot) : initialSnapshot(paymentId);
      const { next, effects, changed } = step(current, event);
      if (!changed) {
        // A replay, a stale status, or a result for a step not reached: nothing to write.
        return { outcome: 'duplicate', paymentId, version: row?.version ?? 0, state: row?.state ?? null };
      }
      const version = (row?.version ?? 0) + 1;
      const summary = summarize(next);
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
        row ? JSON.stringify(current.value) : null,
        JSON.stringify(effects),
      ];
      // state_entered_at moves only when the state value does (not on progress kept in context).
      if (row) params.push(JSON.stringify(current.value) !== JSON.stringify(next.value));
      // Named statements: Postgres parses and plans each once per connection, not once per event.
      const sql = row ? { name: 'payment-update-if-version', text: UPDATE_IF_VERSION } : { name: 'payment-insert-if-absent', text: INSERT_IF_ABSENT };
      const won = effects.length === 0 ? await writeAlone(sql, params) : await writeWithJobs(sql, params, paymentId, effects);
      if (won) return { outcome: 'applied', paymentId, version, state: summary.state, effects };
      // Another writer committed this version first: re-read and decide again on its result.
      if (attempt >= MAX_ATTEMPTS) throw new Error(`applyEvent: payment ${paymentId} kept changing under ${MAX_ATTEMPTS} attempts`);
    }
  }

  async function writeAlone(sql: Statement, params: unknown[]): Promise<boolean> {
    return (await pool.query({ ...sql, values: params })).rowCount === 1;
  }

  /** State change and effect jobs in one transaction: pg-boss inserts the jobs through our client. */
  async function writeWithJobs(sql: Statement, params: unknown[], paymentId: string, effects: Effect[]): Promise<boolean> {
    const client = await pool.connect();
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
      client.release();
    }
  }

  return { applyEvent };
}
