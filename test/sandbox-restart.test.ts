import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { createPool } from '../src/persistence/database.js';
import { createScratchDatabase, type ScratchDatabase } from '../src/persistence/scratch-postgres.js';
import { startFakeNowPayments } from '../src/sandbox/nowpayments.fake.js';
import { avoidStoredIds } from '../src/sandbox/sandbox-nowpayments.js';
import { startService, type Service } from '../src/service.js';

// The sandbox survives a restart: the simulated NowPayments keeps its invoices in memory, but the
// database remembers their ids. Two service starts on one database: the second must neither reuse an
// invoice id (orders.invoice_id is unique: a 500 for every new order) nor a payment id (a new payment
// would be taken for a duplicate of an old one and ignored).

const ADMIN = 'restart-admin-token-0123456789abcdef';
let scratch: ScratchDatabase;
beforeAll(async () => {
  // A database of its own (cloned from the migrated template) that outlives each service.
  scratch = await createScratchDatabase(inject('adminUrl'), `telepay_restart_${randomBytes(5).toString('hex')}`, { template: inject('templateDb') });
});
afterAll(async () => {
  await scratch?.drop();
});

async function start(): Promise<{ service: Service; url: string }> {
  const config = loadConfig({ NODE_ENV: 'test', PORT: '0', LOG_LEVEL: 'silent', ADMIN_TOKEN: ADMIN, DATABASE_URL: scratch.url, RECONCILE_EVERY: '0 0 1 1 *' });
  const service = await startService(config, createLogger('silent'), { effects: [] });
  const address = service.app.server.address();
  return { service, url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` };
}

async function call(url: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { ...(body !== undefined && { 'content-type': 'application/json' }), authorization: `Bearer ${ADMIN}` },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** An order and the simulated buyer paying it: the order id, the invoice id, the payment id and how each IPN was answered. */
async function orderAndPay(url: string) {
  const order = await call(url, 'POST', '/api/orders', { telegram_user_id: '42', open_channel_id: '-1001', plan_id: 'month' });
  expect(order.status, JSON.stringify(order.json)).toBe(201);
  const paid = await call(url, 'POST', `/sandbox/orders/${order.json.order_id as string}/pay`, {});
  expect(paid.status).toBe(200);
  const invoiceId = new URL(order.json.invoice_url as string).pathname.split('/').at(-1)!;
  return {
    orderId: order.json.order_id as string,
    invoiceId,
    paymentId: paid.json.payment_id as string,
    answers: (paid.json.sent as Array<{ answer: { status: string } }>).map((s) => s.answer.status),
  };
}

describe('the sandbox across restarts', () => {
  it('a second start on the same database hands out new invoice and payment ids: orders and payments keep working', async () => {
    const first = await start();
    let before: Awaited<ReturnType<typeof orderAndPay>>;
    try {
      const channel = await call(first.url, 'POST', '/admin/channels', {
        open_channel_id: '-1001', closed_channel_id: '-2001', title: 'Signals', wallet_address: '0x52908400098527886E0F7030069857D2E4169EE7',
        currency: 'usdt', network: 'eth', strategy: 'instant', platform_fee_percent: '10',
        plans: [{ plan_id: 'month', title: '1 month', price_usd: '9.99', duration_days: 30 }],
      });
      expect(channel.status).toBe(201);
      before = await orderAndPay(first.url);
      expect(before.answers).toEqual(['applied', 'applied', 'applied']);
    } finally {
      await first.service.close();
    }

    const second = await start();
    try {
      // Above everything the first run stored, before anything is asked of it.
      const next = second.service.sandbox.nowPayments!.fake.nextIds();
      expect(next.invoiceId).toBeGreaterThan(Number(before.invoiceId));
      expect(next.paymentId).toBeGreaterThan(Number(before.paymentId));

      const after = await orderAndPay(second.url);
      expect(after.invoiceId).not.toBe(before.invoiceId);
      expect(after.paymentId).not.toBe(before.paymentId);
      // A new payment, applied as one: not mistaken for a duplicate of the first run's.
      expect(after.answers).toEqual(['applied', 'applied', 'applied']);
      const status = await call(second.url, 'GET', `/admin/payments/${after.paymentId}`);
      // Routed inside the transaction that confirmed it; no worker runs here, so it stops there.
      expect((status.json.payment as { state: string }).state).toBe('routed');
      const { rows } = await second.service.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM payments WHERE payment_id = ANY($1)', [[before.paymentId, after.paymentId]]);
      expect(rows[0]!.n).toBe(2);
    } finally {
      await second.service.close();
    }
  });

  it('a fake that would start over at ids already stored (the old behaviour, or a clock set back) is raised above them', async () => {
    const pool = createPool(scratch.url, 2);
    try {
      const { rows } = await pool.query<{ invoice: string; payment: string }>(
        `SELECT (SELECT max(invoice_id::numeric) FROM orders)::text AS invoice, (SELECT max(payment_id::numeric) FROM payments)::text AS payment`,
      );
      const stored = { invoiceId: Number(rows[0]!.invoice), paymentId: Number(rows[0]!.payment) };
      const fake = await startFakeNowPayments({ apiKey: 'k', ipnSecret: 's', firstIds: stored });
      try {
        expect(fake.nextIds()).toEqual(stored); // would collide
        await avoidStoredIds(fake, pool);
        expect(fake.nextIds()).toEqual({ invoiceId: stored.invoiceId + 1, paymentId: stored.paymentId + 1 });
      } finally {
        await fake.close();
      }
    } finally {
      await pool.end();
    }
  });
});
