import type pg from 'pg';
import { restore } from '../machines/payment.step.js';
import { viewOf } from '../machines/payment.view.js';

// Rows written before the read model existed (migration 008) get their view computed once, at start,
// by the same pure function applyEvent uses. Guarded by the version so a concurrent applyEvent (another
// instance already running) always wins; that write carries a fresh view anyway.

export async function backfillPaymentViews(pool: pg.Pool, batch = 500): Promise<number> {
  let total = 0;
  for (;;) {
    const { rows } = await pool.query<{ payment_id: string; version: number; snapshot: unknown }>(
      'SELECT payment_id, version, snapshot FROM payments WHERE view IS NULL ORDER BY payment_id LIMIT $1',
      [batch],
    );
    if (rows.length === 0) return total;
    for (const row of rows) {
      const view = viewOf(restore(row.snapshot));
      await pool.query(
        'UPDATE payments SET view = $3, step = $4, rank = $5, np_status = $6 WHERE payment_id = $1 AND version = $2 AND view IS NULL',
        [row.payment_id, row.version, view, view.step, view.rank, view.np.status],
      );
    }
    total += rows.length;
  }
}
