import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { PaymentEvent } from '../machines/payment.events.js';
import { initialSnapshot, persist, restore, step, type Effect, type PaymentSnapshot } from '../machines/payment.step.js';
import { summarize, type SummaryState } from '../machines/payment.summary.js';
import { effectJobId } from './job-id.js';
import { queueOf } from './queues.js';

// The one path every state change takes (ARCHITECTURE.md): lock the payment row, let the pure
// machine decide, and commit the new snapshot, its journal row and the jobs for its effects together.
// A replay finds the machine already past the event, so it changes nothing and writes nothing.

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

interface Row {
  snapshot: unknown;
  version: number;
  state: SummaryState;
}

const SELECT = 'SELECT snapshot, version, state FROM payments WHERE payment_id = $1';

export function createEngine(deps: { pool: pg.Pool; boss: PgBoss }): Engine {
  const { pool, boss } = deps;

  async function applyEvent(paymentId: string, event: PaymentEvent, options: ApplyOptions): Promise<ApplyResult> {
    // Optimistic read without a lock: if the event is a no-op on the latest committed snapshot, answering
    // "duplicate" now is the same as if it had been serialised right here. Replays cost one indexed read.
    const seen = (await pool.query<Row>(SELECT, [paymentId])).rows[0];
    if (seen && !step(restore(seen.snapshot), event).changed) {
      return { outcome: 'duplicate', paymentId, version: seen.version, state: seen.state };
    }

    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const row = await lockOrCreate(client, paymentId);
      const current: PaymentSnapshot = row ? restore(row.snapshot) : initialSnapshot(paymentId);
      const { next, effects, changed } = step(current, event);
      if (!changed) {
        // Someone applied it first (or the first event for an unknown payment does not start one).
        await client.query('ROLLBACK');
        return { outcome: 'duplicate', paymentId, version: row?.version ?? 0, state: row?.state ?? null };
      }
      const version = (row?.version ?? 0) + 1;
      const summary = summarize(next);
      const stateChanged = !row || JSON.stringify(current.value) !== JSON.stringify(next.value);
      await client.query(
        `UPDATE payments
            SET snapshot = $2, version = $3, state = $4, state_value = $5, review_reason = $6,
                order_id = coalesce(order_id, $7), updated_at = now(),
                state_entered_at = CASE WHEN $8 THEN now() ELSE state_entered_at END
          WHERE payment_id = $1`,
        [paymentId, persist(next), version, summary.state, JSON.stringify(next.value), summary.reviewReason, next.context.orderId, stateChanged],
      );
      await client.query(
        `INSERT INTO payment_journal (payment_id, seq, event_type, event, source, from_state, to_state, effects)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [paymentId, version, event.type, event, options.source, row ? JSON.stringify(current.value) : null, JSON.stringify(next.value), JSON.stringify(effects)],
      );
      // Same transaction: a state change without its jobs (or jobs without the change) cannot commit.
      const db = { executeSql: (text: string, values?: unknown[]) => client.query(text, values) };
      for (const { effect, attempt } of effects) {
        await boss.send(queueOf(effect), { paymentId, effect, attempt }, { id: effectJobId(paymentId, effect, attempt), db });
      }
      await client.query('COMMIT');
      return { outcome: 'applied', paymentId, version, state: summary.state, effects };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  return { applyEvent };
}

/** Insert-if-absent, then lock: the first event for an unknown payment creates its machine. */
async function lockOrCreate(client: pg.PoolClient, paymentId: string): Promise<Row | null> {
  const locked = await client.query<Row>(`${SELECT} FOR UPDATE`, [paymentId]);
  if (locked.rows[0]) return locked.rows[0];
  const initial = initialSnapshot(paymentId);
  const inserted = await client.query(
    `INSERT INTO payments (payment_id, state, state_value, snapshot, version)
     VALUES ($1, 'received', $2, $3, 0) ON CONFLICT (payment_id) DO NOTHING`,
    [paymentId, JSON.stringify(initial.value), persist(initial)],
  );
  if (inserted.rowCount === 1) return null; // ours, uncommitted: version 0 with the initial snapshot
  // A concurrent first event won the insert; wait for its commit and continue from its result.
  const raced = await client.query<Row>(`${SELECT} FOR UPDATE`, [paymentId]);
  return raced.rows[0] ?? null;
}
