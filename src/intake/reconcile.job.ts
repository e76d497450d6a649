import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { NowPaymentsClient } from '../nowpayments/client.js';
import { NowPaymentsError } from '../nowpayments/client.js';
import type { Engine } from '../persistence/apply-event.js';
import { unappliedDeliveries } from './ipn-deliveries.repo.js';
import { mapIpnBody } from './ipn-to-event.js';
import type { IpnService } from './ipn.service.js';
import { reconcileChecks } from './ipn.metrics.js';

// A missed IPN heals itself: on a schedule we ask NowPayments about payments sitting in a non-final
// status and about invoices that never produced a payment, and feed the answers through the same
// mapping and engine.applyEvent as an IPN (journal source "reconcile"). The answers are trusted without
// an HMAC because we fetched them ourselves, with our API key, over TLS from the configured API URL.
// Stored-but-unapplied IPN deliveries are re-applied first: we already hold them.

export const RECONCILE_QUEUE = 'reconcile';

const NON_FINAL = ['waiting', 'confirming', 'confirmed', 'sending'];
// An order never paid is asked about for this long, then left alone (NowPayments invoices of this age
// no longer take payments); each is asked at most once per RECONCILE_AFTER.
const ORDER_WINDOW_MS = 7 * 86_400_000;

export interface ReconcileDeps {
  pool: pg.Pool;
  engine: Engine;
  ipn: IpnService;
  log: Logger;
  /** Absent when no NowPayments API key is configured: only stored deliveries are re-applied. */
  nowPayments?: NowPaymentsClient | undefined;
  /** RECONCILE_AFTER: how long a payment may sit in a non-final status (and between two checks of it). */
  olderThanMs: number;
  /** How old a stored-but-unapplied delivery must be before it counts as stuck (not just in flight). */
  deliveryGraceMs?: number;
  /** Upper bound of look-ups per kind per run, so one run never floods NowPayments or the database. */
  limit?: number;
}

export interface ReconcileReport {
  deliveries: number;
  payments: number;
  invoices: number;
  applied: number;
  errors: number;
}

type Outcome = 'applied' | 'duplicate' | 'parked' | 'not_found' | 'error';

export async function reconcileOnce(deps: ReconcileDeps): Promise<ReconcileReport> {
  const limit = deps.limit ?? 100;
  const report: ReconcileReport = { deliveries: 0, payments: 0, invoices: 0, applied: 0, errors: 0 };
  const count = (kind: string, outcome: Outcome | 'stored') => {
    reconcileChecks.inc({ kind, outcome });
    if (outcome === 'applied') report.applied++;
    if (outcome === 'error' || outcome === 'stored') report.errors++;
  };

  for (const id of await unappliedDeliveries(deps.pool, { olderThanMs: deps.deliveryGraceMs ?? 60_000, limit })) {
    report.deliveries++;
    try {
      count('delivery', (await deps.ipn.replayDelivery(id, 'reconcile')).status);
    } catch (error) {
      deps.log.error({ deliveryId: id, err: error }, 'reconcile: re-applying a stored IPN failed');
      count('delivery', 'error');
    }
  }

  const client = deps.nowPayments;
  if (!client) return report;

  for (const paymentId of await stalePayments(deps.pool, deps.olderThanMs, limit)) {
    report.payments++;
    let outcome: Outcome;
    let problem: string | null = null;
    try {
      outcome = await applyAnswer(deps, await client.getPayment(paymentId), paymentId);
    } catch (error) {
      outcome = error instanceof NowPaymentsError && error.status === 404 ? 'not_found' : 'error';
      problem = (error as Error).message;
      if (outcome === 'error') deps.log.warn({ paymentId, err: error }, 'reconcile: NowPayments look-up failed');
    }
    await recordCheck(deps.pool, `payment:${paymentId}`, outcome, problem);
    count('payment', outcome);
  }

  for (const { invoiceId, orderId } of await silentInvoices(deps.pool, deps.olderThanMs, limit)) {
    report.invoices++;
    let outcome: Outcome = 'not_found';
    let problem: string | null = null;
    try {
      for (const answer of await client.listPaymentsByInvoice(invoiceId)) {
        const one = await applyAnswer(deps, answer, null);
        if (one === 'applied' || outcome === 'not_found') outcome = one;
      }
    } catch (error) {
      outcome = 'error';
      problem = (error as Error).message;
      deps.log.warn({ invoiceId, orderId, err: error }, 'reconcile: NowPayments invoice look-up failed');
    }
    await recordCheck(deps.pool, `invoice:${invoiceId}`, outcome, problem);
    count('invoice', outcome);
  }

  if (report.applied || report.errors) deps.log.info({ ...report }, 'reconciliation run');
  return report;
}

async function applyAnswer(deps: ReconcileDeps, answer: Record<string, unknown>, expectedId: string | null): Promise<Outcome> {
  const mapping = mapIpnBody(answer);
  if (!mapping.ok) {
    deps.log.warn({ paymentId: mapping.paymentId ?? expectedId, problem: mapping.problem }, 'reconcile: NowPayments answer could not be understood');
    return 'parked';
  }
  if (expectedId !== null && mapping.paymentId !== expectedId) {
    throw new Error(`asked for payment ${expectedId}, NowPayments answered about ${mapping.paymentId}`);
  }
  const result = await deps.engine.applyEvent(mapping.paymentId, mapping.event, { source: 'reconcile' });
  if (result.outcome === 'applied') deps.log.info({ paymentId: mapping.paymentId, event: mapping.event.type, state: result.state }, 'reconcile: missed NowPayments update applied');
  return result.outcome;
}

// Payments still in "received" with a non-final NowPayments status, untouched for olderThan and not asked
// about within olderThan. Oldest first.
async function stalePayments(pool: pg.Pool, olderThanMs: number, limit: number): Promise<string[]> {
  const { rows } = await pool.query<{ payment_id: string }>(
    `SELECT p.payment_id FROM payments p
      LEFT JOIN reconcile_checks c ON c.subject = 'payment:' || p.payment_id
      WHERE p.state = 'received'
        AND p.np_status = ANY($1::text[])
        AND p.updated_at < now() - make_interval(secs => $2::double precision / 1000)
        AND (c.checked_at IS NULL OR c.checked_at < now() - make_interval(secs => $2::double precision / 1000))
      ORDER BY coalesce(c.checked_at, p.updated_at) LIMIT $3`,
    [NON_FINAL, olderThanMs, limit],
  );
  return rows.map((r) => r.payment_id);
}

// Orders with an invoice, older than olderThan and younger than ORDER_WINDOW, without any payment row:
// NowPayments may have a payment for them whose IPN never reached us.
async function silentInvoices(pool: pg.Pool, olderThanMs: number, limit: number): Promise<Array<{ invoiceId: string; orderId: string }>> {
  const { rows } = await pool.query<{ invoice_id: string; order_id: string }>(
    `SELECT o.invoice_id, o.order_id FROM orders o
      LEFT JOIN reconcile_checks c ON c.subject = 'invoice:' || o.invoice_id
      WHERE o.invoice_id IS NOT NULL
        AND o.created_at < now() - make_interval(secs => $1::double precision / 1000)
        AND o.created_at > now() - make_interval(secs => $2::double precision / 1000)
        AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.order_id)
        AND (c.checked_at IS NULL OR c.checked_at < now() - make_interval(secs => $1::double precision / 1000))
      ORDER BY coalesce(c.checked_at, o.created_at) LIMIT $3`,
    [olderThanMs, ORDER_WINDOW_MS, limit],
  );
  return rows.map((r) => ({ invoiceId: r.invoice_id, orderId: r.order_id }));
}

async function recordCheck(pool: pg.Pool, subject: string, outcome: Outcome, problem: string | null): Promise<void> {
  await pool.query(
    `INSERT INTO reconcile_checks (subject, checked_at, outcome, problem) VALUES ($1, now(), $2, $3)
     ON CONFLICT (subject) DO UPDATE SET checked_at = now(), outcome = $2, problem = $3`,
    [subject, outcome, problem],
  );
}

/** Schedules the run (cron RECONCILE_EVERY) and works it; the queue's exclusive policy keeps runs from overlapping. */
export async function startReconcileJob(boss: PgBoss, cron: string, deps: ReconcileDeps): Promise<() => Promise<void>> {
  await boss.schedule(RECONCILE_QUEUE, cron);
  await boss.work(RECONCILE_QUEUE, { pollingIntervalSeconds: 5 }, async () => {
    await reconcileOnce(deps);
  });
  return async () => {
    await boss.offWork(RECONCILE_QUEUE);
  };
}
