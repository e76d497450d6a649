import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findChannel } from '../src/channels/channels.repo.js';
import { findChannelWithPlan, findPlan } from '../src/channels/plans.repo.js';
import { buildApp } from '../src/http/app.js';
import { createNowPaymentsClient } from '../src/nowpayments/client.js';
import { createOrderService, type OrderService } from '../src/orders/order.service.js';
import { verifyStatusToken } from '../src/orders/status-token.js';
import { startFakeNowPayments, type FakeNowPayments } from '../src/sandbox/nowpayments.fake.js';
import { startTestService, type TestService } from './support/service.js';
import { recordingPool } from './support/statements.js';

const API_KEY = 'np-test-key';
const STATUS_SECRET = 's'.repeat(40);
const ADMIN = 'x'.repeat(32);

let fake: FakeNowPayments;
let t: TestService;


beforeAll(async () => {
  fake = await startFakeNowPayments({ apiKey: API_KEY, ipnSecret: 'ipn-secret' });
  t = await startTestService(
    { ADMIN_TOKEN: ADMIN, NOWPAYMENTS_API_URL: fake.url, NOWPAYMENTS_API_KEY: API_KEY, NOWPAYMENTS_IPN_SECRET: 'ipn-secret', STATUS_TOKEN_SECRET: STATUS_SECRET },
    { effects: ['route'] },
  );
  const create = (body: object) =>
    t.service.app.inject({ method: 'POST', url: '/admin/channels', headers: { authorization: `Bearer ${ADMIN}` }, payload: body });
  const base = { title: 'Signals', wallet_address: '0x52908400098527886E0F7030069857D2E4169EE7', currency: 'usdt', network: 'eth', strategy: 'instant', platform_fee_percent: '10' };
  expect((await create({ ...base, open_channel_id: '-1001', closed_channel_id: '-2001', plans: [
    { plan_id: 'month', title: '1 month', price_usd: '9.99', duration_days: 30 },
    { plan_id: 'old', title: 'old', price_usd: '5', duration_days: 30, active: false },
  ] })).statusCode).toBe(201);
  expect((await create({ ...base, open_channel_id: '-1002', closed_channel_id: '-2002', plans: [{ plan_id: 'other', title: 'x', price_usd: '10', duration_days: 1 }] })).statusCode).toBe(201);
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
});

const order = (body: object) => t.service.app.inject({ method: 'POST', url: '/api/orders', payload: body });

const orderServiceDeps = () => ({ pool: t.db.pool, nowPayments: t.service.nowPayments, statusTokenSecret: STATUS_SECRET, publicBaseUrl: () => t.url, log: t.service.log });

/** The HTTP surface built around another order service (app.inject, no second service started). */
async function orderWith(orders: OrderService, body: object) {
  const { service } = t;
  const app = await buildApp({ config: t.config, pool: t.db.pool, boss: service.boss, engine: service.engine, log: service.log, statusTokenSecret: STATUS_SECRET, ipn: service.ipn, ipnSecret: service.ipnSecret, orders });
  try {
    return await app.inject({ method: 'POST', url: '/api/orders', payload: body });
  } finally {
    await app.close();
  }
}

describe('POST /api/orders', () => {
  it('creates an order and its NowPayments invoice with our callback, success and cancel URLs', async () => {
    const res = await order({ telegram_user_id: '123456789', open_channel_id: '-1001', plan_id: 'month' });
    expect(res.statusCode).toBe(201);
    const { order_id: orderId, invoice_url: invoiceUrl, status_url: statusUrl } = res.json();
    expect(orderId).toMatch(/^ord_[a-z2-7]{26}$/);

    const invoice = [...fake.invoices.values()].find((i) => i.order_id === orderId)!;
    expect(invoice).toMatchObject({
      price_amount: '9.99',
      price_currency: 'usd',
      ipn_callback_url: `${t.url}/webhooks/nowpayments`,
      cancel_url: `${t.url}/pay/cancel?order_id=${orderId}`,
      invoice_url: invoiceUrl,
    });
    expect(fake.requests.find((r) => r.path === '/v1/invoice' && (r.body as { order_id: string }).order_id === orderId)?.headers['x-api-key']).toBe(API_KEY);

    const success = new URL(invoice.success_url!);
    expect(statusUrl).toBe(invoice.success_url);
    expect(`${success.origin}${success.pathname}`).toBe(`${t.url}/pay/success`);
    expect(success.searchParams.get('order_id')).toBe(orderId);
    expect(verifyStatusToken(STATUS_SECRET, orderId, success.searchParams.get('token'))).toBe(true);
    expect(verifyStatusToken(STATUS_SECRET, `${orderId}x`, success.searchParams.get('token'))).toBe(false);

    const { rows } = await t.db.pool.query('SELECT buyer_telegram_id::text AS buyer, open_channel_id::text AS channel, plan_id, price_usd::text AS price, source, invoice_id, invoice_url, granted_payment_id FROM orders WHERE order_id = $1', [orderId]);
    expect(rows).toEqual([{ buyer: '123456789', channel: '-1001', plan_id: 'month', price: '9.99', source: 'api', invoice_id: invoice.id, invoice_url: invoiceUrl, granted_payment_id: null }]);
  });

  it('gives every order its own id', async () => {
    const ids = await Promise.all(Array.from({ length: 5 }, async () => (await order({ telegram_user_id: '42', open_channel_id: '-1001', plan_id: 'month' })).json().order_id));
    expect(new Set(ids).size).toBe(5);
  });

  it('answers 404 for an unknown channel', async () => {
    const res = await order({ telegram_user_id: '42', open_channel_id: '-1999', plan_id: 'month' });
    expect(res.statusCode).toBe(404);
    expect(res.json().message).toMatch(/^open_channel_id: /);
  });

  it('answers 400 for a plan of another channel, an unknown plan and a withdrawn plan', async () => {
    for (const plan_id of ['other', 'nope', 'old']) {
      const res = await order({ telegram_user_id: '42', open_channel_id: '-1001', plan_id });
      expect(res.statusCode).toBe(400);
      expect(res.json().message).toMatch(/^plan_id: /);
    }
  });

  it('answers 400 naming the field for a bad telegram user id', async () => {
    const res = await order({ telegram_user_id: '12.5', open_channel_id: '-1001', plan_id: 'month' });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/body\.telegram_user_id/);
  });

  it('answers 502 when NowPayments refuses, keeping the order without an invoice', async () => {
    // The same order service the root builds, given a client NowPayments refuses.
    const refused = createOrderService({ ...orderServiceDeps(), nowPayments: createNowPaymentsClient({ baseUrl: fake.url, apiKey: 'wrong-key' }) });
    const before = (await t.db.pool.query('SELECT count(*)::int AS n FROM orders WHERE invoice_id IS NULL')).rows[0].n;
    const res = await orderWith(refused, { telegram_user_id: '42', open_channel_id: '-1001', plan_id: 'month' });
    expect(res.statusCode).toBe(502);
    expect(res.json().message).toMatch(/NowPayments did not create the invoice/);
    expect((await t.db.pool.query('SELECT count(*)::int AS n FROM orders WHERE invoice_id IS NULL')).rows[0].n).toBe(before + 1);
  });

  it('answers 503 when no payments provider is configured', async () => {
    const unconfigured = createOrderService({ ...orderServiceDeps(), nowPayments: null });
    const res = await orderWith(unconfigured, { telegram_user_id: '42', open_channel_id: '-1001', plan_id: 'month' });
    expect(res.statusCode).toBe(503);
    expect(res.json().message).toMatch(/payments provider not configured/);
  });
});

describe('POST /api/orders rate limit', () => {
  it('limits order creation per client IP (each order creates an invoice), other clients unaffected', async () => {
    const from = (ip: string) => t.service.app.inject({ method: 'POST', url: '/api/orders', remoteAddress: ip, payload: { telegram_user_id: 'x' } });
    const limit = t.config.ORDER_RATE_LIMIT;
    for (let i = 0; i < limit; i++) expect((await from('198.51.100.7')).statusCode).toBe(400);
    const limited = await from('198.51.100.7');
    expect(limited.statusCode).toBe(429);
    expect((await from('198.51.100.8')).statusCode).toBe(400);
  });
});

describe('order creation round trips', () => {
  it('the joined read answers what the channel and plan reads answer, each null where they are', async () => {
    for (const [channelId, planId] of [['-1001', 'month'], ['-1001', 'old'], ['-1001', 'other'], ['-1999', 'month']] as const) {
      const channel = await findChannel(t.db.pool, channelId);
      expect(await findChannelWithPlan(t.db.pool, channelId, planId)).toEqual({ channel, plan: channel && (await findPlan(t.db.pool, channelId, planId)) });
    }
  });

  it('an API order reads its channel and plan and is written in one statement, then its invoice is stored', async () => {
    const { pool, sent } = recordingPool(t.db.pool);
    const orders = createOrderService({ ...orderServiceDeps(), pool });
    const created = await orders.createOrder({ buyerTelegramId: '42', openChannelId: '-1001', planId: 'month', source: 'api' });
    expect(created).toMatchObject({ priceUsd: '9.99', reused: false });
    expect(sent).toEqual(['channel-with-plan+order-insert', 'order-set-invoice']);
    // Written at the plan's price, for its channel and buyer, as the API asked.
    const { rows } = await t.db.pool.query('SELECT buyer_telegram_id::text AS buyer, open_channel_id::text AS channel, plan_id, price_usd::text AS price, source FROM orders WHERE order_id = $1', [created.orderId]);
    expect(rows).toEqual([{ buyer: '42', channel: '-1001', plan_id: 'month', price: '9.99', source: 'api' }]);
  });

  it('a bot order reads channel and plan once, before its transaction; its second tap reads them once too', async () => {
    const { pool, sent } = recordingPool(t.db.pool);
    const orders = createOrderService({ ...orderServiceDeps(), pool });
    const tap = () => orders.createOrder({ buyerTelegramId: '4242', openChannelId: '-1001', planId: 'month', source: 'bot' });
    const first = await tap();
    expect(sent.slice(0, 2)).toEqual(['channel-with-plan', 'BEGIN']);
    expect(sent.slice(-3)).toEqual(['order-insert', 'order-set-invoice', 'COMMIT']);
    expect(sent.filter((s) => s === 'channel-with-plan')).toHaveLength(1);
    sent.length = 0;
    expect(await tap()).toMatchObject({ orderId: first.orderId, reused: true });
    expect(sent.filter((s) => s === 'channel-with-plan')).toHaveLength(1);
    expect(sent).not.toContain('order-insert');
  });

  it('refuses an unknown channel (404), and an unknown, foreign or withdrawn plan (400), after that one statement', async () => {
    const { pool, sent } = recordingPool(t.db.pool);
    const orders = createOrderService({ ...orderServiceDeps(), pool });
    const attempt = (openChannelId: string, planId: string) => orders.createOrder({ buyerTelegramId: '42', openChannelId, planId, source: 'api' });
    const ordersBefore = (await t.db.pool.query('SELECT count(*)::int AS n FROM orders')).rows[0].n;
    await expect(attempt('-1999', 'month')).rejects.toMatchObject({ kind: 'not_found', message: 'open_channel_id: no channel -1999 is sold here' });
    expect(sent).toEqual(['channel-with-plan+order-insert']);
    for (const [planId, message] of [
      ['nope', 'plan_id: "nope" is not a plan of channel -1001'],
      ['other', 'plan_id: "other" is not a plan of channel -1001'],
      ['old', 'plan_id: "old" is no longer sold; choose an active plan of channel -1001'],
    ] as const) {
      sent.length = 0;
      await expect(attempt('-1001', planId)).rejects.toMatchObject({ kind: 'invalid', message });
      expect(sent).toEqual(['channel-with-plan+order-insert']);
    }
    // The statement that would have written the order wrote nothing.
    expect((await t.db.pool.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(ordersBefore);
  });
});
