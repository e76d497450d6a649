import type pg from 'pg';
import type { EffectName } from '../machines/payment.events.js';
import type { PaymentView } from '../machines/payment.view.js';
import { effectJobId } from '../persistence/job-id.js';
import { queueOf } from '../persistence/queues.js';
import type { Queryable } from '../persistence/transaction.js';
import { allowedActions, linksOf, regionsOf, waitingFor, type OperatorAction, type Regions, type WaitingFor } from './operator-actions.js';
import type { StuckLimits } from '../domain/stuck-limits.js';

// Read-only queries behind the operator surface. Changing a payment goes through applyEvent only.
//
// A payment's jobs are found by primary key, never by scanning pg-boss's job table for its data: their
// ids are deterministic (persistence/job-id.ts: payment, effect, attempt), and the journal names every
// (effect, attempt) the engine ever enqueued, in the same transaction that enqueued it.

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
  /** Only payments sitting in their state at least this long, and not paid or failed. */
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

/** The limits as two parallel arrays for unnest(): only states that can be stuck. */
function limitArrays(limits: StuckLimits): [string[], number[]] {
  const entries = Object.entries(limits).filter((e): e is [string, number] => e[1] !== null);
  return [entries.map(([state]) => state), entries.map(([, ms]) => ms)];
}

/** Payments and stuck payments per state, in one grouped query (the dashboard's glance and the /metrics gauges). */
export async function countStuckByState(db: Queryable, limits: StuckLimits): Promise<Record<string, { total: number; stuck: number }>> {
  const [states, ms] = limitArrays(limits);
  const { rows } = await db.query<{ state: string; total: number; stuck: number }>(
    `SELECT p.state, count(*)::int AS total,
            (count(*) FILTER (WHERE p.state_entered_at < now() - l.ms * interval '1 millisecond'))::int AS stuck
       FROM payments p LEFT JOIN unnest($1::text[], $2::bigint[]) AS l(state, ms) ON l.state = p.state
      GROUP BY p.state`,
    [states, ms],
  );
  return Object.fromEntries(rows.map((r) => [r.state, { total: r.total, stuck: r.stuck }]));
}

// --- jobs by id --------------------------------------------------------------------------------------

export interface JobRef {
  effect: EffectName;
  attempt: number;
  queue: string;
  id: string;
}

export interface JobRow {
  id: string;
  queue: string;
  state: string;
  effect: string | null;
  attempt: number | null;
  retry_count: number;
  retry_limit: number;
  created_on: Date;
  started_on: Date | null;
  completed_on: Date | null;
  output: unknown;
}

export interface LastError {
  job_id: string;
  queue: string;
  /** retry: it will run again; failed: out of retries (or not retryable), dead-lettered. */
  state: string;
  attempt: number | null;
  retry_count: number;
  message: string;
  at: Date | null;
}

/** Every job the engine scheduled for a payment, from the (effect, attempt) pairs its journal rows name. */
export function jobRefsOf(paymentId: string, journalEffects: unknown[]): JobRef[] {
  const seen = new Map<string, JobRef>();
  for (const effects of journalEffects) {
    if (!Array.isArray(effects)) continue;
    for (const e of effects as { effect?: unknown; attempt?: unknown }[]) {
      if (typeof e?.effect !== 'string' || typeof e.attempt !== 'number') continue;
      const effect = e.effect as EffectName;
      const id = effectJobId(paymentId, effect, e.attempt);
      seen.set(id, { effect, attempt: e.attempt, queue: queueOf(effect), id });
    }
  }
  return [...seen.values()];
}

/** Looks jobs up by pg-boss's primary key (name, id); jobs already deleted by pg-boss's retention are simply absent. */
export async function findJobs(db: Queryable, refs: readonly JobRef[]): Promise<JobRow[]> {
  if (!refs.length) return [];
  const { rows } = await db.query<JobRow>(
    `SELECT j.id::text, j.name AS queue, j.state::text, j.data->>'effect' AS effect, (j.data->>'attempt')::int AS attempt,
            j.retry_count, j.retry_limit, j.created_on, j.started_on, j.completed_on, j.output
       FROM unnest($1::text[], $2::uuid[]) AS k(name, id)
       JOIN pgboss.job j ON j.name = k.name AND j.id = k.id
      ORDER BY j.created_on, j.id`,
    [refs.map((r) => r.queue), refs.map((r) => r.id)],
  );
  return rows;
}

function messageOf(output: unknown): string | null {
  if (output && typeof output === 'object' && 'message' in output && typeof output.message === 'string') return output.message;
  return null;
}

/** The latest job that failed (and will retry, or was dead-lettered) with the error it recorded. */
export function lastErrorOf(jobs: readonly JobRow[]): LastError | null {
  const failed = jobs
    .filter((j) => ['retry', 'failed', 'active'].includes(j.state) && messageOf(j.output))
    .sort((a, b) => (b.completed_on ?? b.created_on).getTime() - (a.completed_on ?? a.created_on).getTime());
  const job = failed[0];
  if (!job) return null;
  return { job_id: job.id, queue: job.queue, state: job.state, attempt: job.attempt, retry_count: job.retry_count, message: messageOf(job.output)!, at: job.completed_on };
}

async function journalEffects(db: Queryable, paymentIds: readonly string[]): Promise<Map<string, unknown[]>> {
  const out = new Map<string, unknown[]>(paymentIds.map((id) => [id, []]));
  if (!paymentIds.length) return out;
  const { rows } = await db.query<{ payment_id: string; effects: unknown }>(
    `SELECT payment_id, effects FROM payment_journal WHERE payment_id = ANY($1::text[]) AND effects <> '[]'::jsonb`,
    [paymentIds],
  );
  for (const row of rows) out.get(row.payment_id)?.push(row.effects);
  return out;
}

/** Jobs of several payments, two queries in all (journal effects, then jobs by primary key). */
export async function jobsOfPayments(db: Queryable, paymentIds: readonly string[]): Promise<Map<string, JobRow[]>> {
  const effects = await journalEffects(db, paymentIds);
  const refs = paymentIds.flatMap((id) => jobRefsOf(id, effects.get(id) ?? []).map((ref) => ({ ...ref, paymentId: id })));
  const byId = new Map(refs.map((r) => [r.id, r.paymentId]));
  const out = new Map<string, JobRow[]>(paymentIds.map((id) => [id, []]));
  for (const job of await findJobs(db, refs)) out.get(byId.get(job.id)!)?.push(job);
  return out;
}

// --- one payment -------------------------------------------------------------------------------------

export async function paymentDetail(pool: pg.Pool, paymentId: string) {
  const row = (
    await pool.query<Record<string, unknown> & { snapshot: unknown; view: PaymentView | null; state: string }>(
      `SELECT payment_id, order_id, state, state_value, review_reason, version, state_entered_at, created_at, updated_at,
              extract(epoch FROM now() - state_entered_at)::int AS seconds_in_state, view, snapshot
         FROM payments WHERE payment_id = $1`,
      [paymentId],
    )
  ).rows[0];
  if (!row) return null;
  const { snapshot, ...payment } = row;
  const [journal, results] = await Promise.all([
    pool.query<{ effects: unknown }>(
      `SELECT seq, event_type, source, event->>'by' AS by, event->>'reason' AS reason, from_state, to_state, effects, at
         FROM payment_journal WHERE payment_id = $1 ORDER BY seq`,
      [paymentId],
    ),
    pool.query('SELECT effect, attempt, result, recorded_at FROM effect_results WHERE payment_id = $1 ORDER BY recorded_at', [paymentId]),
  ]);
  const jobs = await findJobs(pool, jobRefsOf(paymentId, journal.rows.map((j) => j.effects)));
  return {
    payment,
    journal: journal.rows,
    jobs,
    effectResults: results.rows,
    last_error: lastErrorOf(jobs),
    waiting_for: waitingFor(row.state, regionsOf(row.view)),
    actions: allowedActions(snapshot, regionsOf(row.view)),
    links: linksOf(paymentId),
  };
}

/** Just enough to decide on an operator event: the state it is in now. */
export async function paymentState(pool: pg.Pool, paymentId: string): Promise<{ state: string; version: number } | null> {
  const { rows } = await pool.query<{ state: string; version: number }>('SELECT state, version FROM payments WHERE payment_id = $1', [paymentId]);
  return rows[0] ?? null;
}

// --- stuck payments ----------------------------------------------------------------------------------

export interface BatchHold {
  batch_id: string;
  status: string;
  review_reason: string | null;
}

export interface StuckPayment {
  payment_id: string;
  order_id: string | null;
  state: string;
  since: Date;
  seconds_in_state: number;
  /** The state's limit in seconds (0 = stuck as soon as it is entered). */
  limit_seconds: number;
  waiting_for: WaitingFor;
  review_reason: string | null;
  regions: Regions;
  last_error: LastError | null;
  actions: OperatorAction[];
  /** A threshold payment whose batch is parked: resumed with POST /admin/payout-batches/:id/retry. */
  batch: BatchHold | null;
  links: ReturnType<typeof linksOf>;
}

/** The threshold batch each accumulated payment's credit was claimed into, if any. */
async function batchesOf(db: Queryable, paymentIds: readonly string[]): Promise<Map<string, BatchHold>> {
  if (!paymentIds.length) return new Map();
  const { rows } = await db.query<BatchHold & { payment_id: string }>(
    `SELECT e.payment_id, b.batch_id, b.status, b.review_reason
       FROM ledger_entries e JOIN payout_batches b ON e.payout_id = 'batch:' || b.batch_id
      WHERE e.payment_id = ANY($1::text[]) AND e.kind = 'payment_credit'`,
    [paymentIds],
  );
  return new Map(rows.map(({ payment_id, ...batch }) => [payment_id, batch]));
}

/**
 * Payments past their state's limit, longest-waiting first, each with why it waits, its last job error,
 * what an operator may do, and the batch holding it. Uses payments (state, state_entered_at) per state.
 */
export async function listStuck(pool: pg.Pool, limits: StuckLimits, limit: number): Promise<StuckPayment[]> {
  const [states, ms] = limitArrays(limits);
  const { rows } = await pool.query<{
    payment_id: string;
    order_id: string | null;
    state: string;
    state_entered_at: Date;
    seconds_in_state: number;
    limit_ms: string;
    review_reason: string | null;
    view: PaymentView | null;
    snapshot: unknown;
  }>(
    `SELECT p.payment_id, p.order_id, p.state, p.state_entered_at, extract(epoch FROM now() - p.state_entered_at)::int AS seconds_in_state,
            l.ms AS limit_ms, p.review_reason, p.view, p.snapshot
       FROM unnest($1::text[], $2::bigint[]) AS l(state, ms)
       JOIN LATERAL (SELECT * FROM payments p WHERE p.state = l.state AND p.state_entered_at < now() - l.ms * interval '1 millisecond'
                      ORDER BY p.state_entered_at LIMIT $3) p ON true
      ORDER BY p.state_entered_at
      LIMIT $3`,
    [states, ms, limit],
  );
  const ids = rows.map((r) => r.payment_id);
  const [jobs, batches] = await Promise.all([jobsOfPayments(pool, ids), batchesOf(pool, rows.filter((r) => r.view?.payout.state === 'accumulated').map((r) => r.payment_id))]);
  return rows.map((r) => {
    const regions = regionsOf(r.view);
    return {
    payment_id: r.payment_id,
    order_id: r.order_id,
    state: r.state,
    since: r.state_entered_at,
    seconds_in_state: r.seconds_in_state,
    limit_seconds: Math.floor(Number(r.limit_ms) / 1000),
    waiting_for: waitingFor(r.state, regions),
    review_reason: r.review_reason,
    regions,
    last_error: lastErrorOf(jobs.get(r.payment_id) ?? []),
    actions: allowedActions(r.snapshot, regions),
    batch: batches.get(r.payment_id) ?? null,
    links: linksOf(r.payment_id),
    };
  });
}

/** Every stuck payment counted by what it waits for (the dashboard's glance), one grouped query over the stuck ranges. */
export async function countStuckByWait(db: Queryable, limits: StuckLimits): Promise<Record<string, { text: string; count: number }>> {
  const [states, ms] = limitArrays(limits);
  const { rows } = await db.query<{ state: string; access: string | null; payout: string | null; n: number }>(
    `SELECT p.state, p.view->'access'->>'state' AS access, p.view->'payout'->>'state' AS payout, count(*)::int AS n
       FROM unnest($1::text[], $2::bigint[]) AS l(state, ms)
       JOIN payments p ON p.state = l.state AND p.state_entered_at < now() - l.ms * interval '1 millisecond'
      GROUP BY 1, 2, 3`,
    [states, ms],
  );
  const out: Record<string, { text: string; count: number }> = {};
  for (const r of rows) {
    const wait = waitingFor(r.state, { access: r.access, payout: r.payout });
    (out[wait.key] ??= { text: wait.text, count: 0 }).count += r.n;
  }
  return out;
}
