import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RECONCILE_QUEUE, reconcileOnce, type ReconcileDeps } from '../src/intake/reconcile.job.js';
import { journalOf } from './support/engine.js';
import { paymentIdOf, inlineNotRun, seedOrder, startIntake, type IntakeHarness } from './support/intake.js';

let h: IntakeHarness;
beforeAll(async () => {
  // Reconciliation alone: a healed payment stays confirmed (routing is a job nobody works here).
  h = await startIntake({}, { effects: [], actors: inlineNotRun });
});
afterAll(async () => {
  await h.close();
});

function deps(olderThanMs: number): ReconcileDeps {
  return {
    pool: h.t.db.pool,
    engine: h.t.service.engine,
    ipn: h.t.service.ipn,
    log: h.t.service.log,
    nowPayments: h.t.service.nowPayments ?? undefined,
    olderThanMs,
    deliveryGraceMs: 0,
  };
}

const stateOf = async (paymentId: string) =>
  (await h.t.db.pool.query<{ state: string }>('SELECT state FROM payments WHERE payment_id = $1', [paymentId])).rows[0]?.state ?? null;

const lookups = (path: string) => h.np.requests.filter((r) => r.method === 'GET' && r.path.startsWith(path)).length;

describe('reconciliation', () => {
  it('heals a missed IPN: an invoice paid at NowPayments whose IPN never came', async () => {
    const { orderId, invoiceId } = await seedOrder(h);
    const paid = h.np.pay(orderId, { status: 'finished' }); // paid, but no IPN is ever sent
    expect(await stateOf(paymentIdOf(paid))).toBeNull();

    const first = await reconcileOnce(deps(0));
    expect(first).toMatchObject({ invoices: 1, applied: 1, errors: 0 });
    expect(await stateOf(paymentIdOf(paid))).toBe('confirmed');
    expect(await journalOf(h.t.db, paymentIdOf(paid))).toEqual([{ seq: 1, event_type: 'np.finished', source: 'reconcile' }]);
    expect(lookups(`/v1/payment/?invoiceId=${invoiceId}`)).toBe(1);

    // Idempotent: the order has its payment now, and the payment is past NowPayments' non-final statuses.
    expect(await reconcileOnce(deps(0))).toMatchObject({ invoices: 0, payments: 0, applied: 0 });
    expect(await journalOf(h.t.db, paymentIdOf(paid))).toHaveLength(1);
  });

  it('heals a payment stuck in a non-final status, and asks about it at most once per RECONCILE_AFTER', async () => {
    const { orderId } = await seedOrder(h);
    const waiting = h.np.pay(orderId, { status: 'waiting' });
    await h.np.sendIpn(waiting);
    const stuck = await seedOrder(h);
    const stillWaiting = h.np.pay(stuck.orderId, { status: 'waiting' });
    await h.np.sendIpn(stillWaiting);
    // Both untouched for an hour; NowPayments finished the first one without telling us.
    await h.t.db.pool.query(`UPDATE payments SET updated_at = now() - interval '1 hour' WHERE payment_id = ANY($1)`, [[paymentIdOf(waiting), paymentIdOf(stillWaiting)]]);
    h.np.pay(orderId, { status: 'finished', paymentId: waiting.payment_id });

    const halfHour = 30 * 60_000;
    expect(await reconcileOnce(deps(halfHour))).toMatchObject({ payments: 2, applied: 1, errors: 0 });
    expect(await stateOf(paymentIdOf(waiting))).toBe('confirmed');
    expect(await stateOf(paymentIdOf(stillWaiting))).toBe('received');
    expect((await journalOf(h.t.db, paymentIdOf(waiting))).map((j) => j.source)).toEqual(['ipn', 'reconcile']);

    // The one still waiting was asked just now: not again until RECONCILE_AFTER has passed.
    const asked = lookups(`/v1/payment/${paymentIdOf(stillWaiting)}`);
    expect(await reconcileOnce(deps(halfHour))).toMatchObject({ payments: 0 });
    expect(lookups(`/v1/payment/${paymentIdOf(stillWaiting)}`)).toBe(asked);
  });

  it('a payment NowPayments does not know is recorded as not found; the run goes on', async () => {
    const raw = { payment_id: 7_000_000_001, payment_status: 'waiting', order_id: 'ord_unknown_to_np' };
    await h.t.service.engine.applyEvent(String(raw.payment_id), { type: 'np.waiting', facts: { orderId: raw.order_id } }, { source: 'test' });
    await h.t.db.pool.query(`UPDATE payments SET updated_at = now() - interval '1 hour' WHERE payment_id = '7000000001'`);
    expect(await reconcileOnce(deps(60_000))).toMatchObject({ payments: 1, applied: 0, errors: 0 });
    const { rows } = await h.t.db.pool.query(`SELECT outcome FROM reconcile_checks WHERE subject = 'payment:7000000001'`);
    expect(rows).toEqual([{ outcome: 'not_found' }]);
  });

  it('runs as a scheduled pg-boss job', async () => {
    const schedules = await h.t.service.boss.getSchedules(RECONCILE_QUEUE);
    expect(schedules.map((s) => s.cron)).toEqual([h.t.config.RECONCILE_EVERY]);
    // A run sent now (as the schedule would) is picked up by the worker and completes.
    const id = await h.t.service.boss.send(RECONCILE_QUEUE, {});
    expect(id).toBeTruthy();
    await vi.waitFor(async () => expect((await h.t.service.boss.getJobById(RECONCILE_QUEUE, id!))?.state).toBe('completed'), { timeout: 20_000, interval: 100 });
  });
});
