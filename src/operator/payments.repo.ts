import type pg from 'pg';

// Read-only queries behind the operator surface. Changing a payment goes through applyEvent only.

export interface PaymentListItem {
  payment_id: string;
  order_id: string | null;
  state: string;
  review_reason: string | null;
  version: number;
  state_entered_at: Date;
  updated_at: Date;
  /** Seconds in the current state. */
  seconds_in_state: number;
}

export interface ListFilter {
  state?: string;
  /** Only payments sitting in their state at least this long, and not paid or failed: the "stuck" view. */
  stuckForMs?: number;
  limit: number;
}

export async function listPayments(pool: pg.Pool, filter: ListFilter): Promise<PaymentListItem[]> {
  const { rows } = await pool.query<PaymentListItem>(
    `SELECT payment_id, order_id, state, review_reason, version, state_entered_at, updated_at,
            extract(epoch FROM now() - state_entered_at)::int AS seconds_in_state
       FROM payments
      WHERE ($1::text IS NULL OR state = $1)
        AND ($2::bigint IS NULL OR (state NOT IN ('paid', 'failed') AND state_entered_at < now() - make_interval(secs => $2::bigint / 1000.0)))
      ORDER BY state_entered_at
      LIMIT $3`,
    [filter.state ?? null, filter.stuckForMs ?? null, filter.limit],
  );
  return rows;
}

export async function countByState(pool: pg.Pool): Promise<Record<string, number>> {
  const { rows } = await pool.query<{ state: string; n: string }>('SELECT state, count(*) AS n FROM payments GROUP BY state');
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

export async function paymentDetail(pool: pg.Pool, paymentId: string) {
  const payment = (
    await pool.query(
      `SELECT payment_id, order_id, state, state_value, review_reason, version, state_entered_at, created_at, updated_at,
              view
         FROM payments WHERE payment_id = $1`,
      [paymentId],
    )
  ).rows[0];
  if (!payment) return null;
  const [journal, jobs, results] = await Promise.all([
    pool.query('SELECT seq, event_type, source, from_state, to_state, effects, at FROM payment_journal WHERE payment_id = $1 ORDER BY seq', [paymentId]),
    pool.query(
      `SELECT id, name AS queue, state, retry_count, data->>'attempt' AS attempt, created_on, started_on, completed_on, output
         FROM pgboss.job WHERE data->>'paymentId' = $1 ORDER BY created_on`,
      [paymentId],
    ),
    pool.query('SELECT effect, attempt, result, recorded_at FROM effect_results WHERE payment_id = $1 ORDER BY recorded_at', [paymentId]),
  ]);
  return { payment, journal: journal.rows, jobs: jobs.rows, effectResults: results.rows };
}
