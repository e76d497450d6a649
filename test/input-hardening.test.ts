import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { buildApp } from '../src/http/app.js';
import { createIpnService } from '../src/intake/ipn.service.js';
import { signIpn } from '../src/nowpayments/signature.js';
import { createOrderService } from '../src/orders/order.service.js';
import { startTestEngine, type TestEngine } from './support/engine.js';

// The defects a tester measured from outside, one by one: input that used to become a 500 (or a signed
// IPN left neither applied nor parked) and what it is answered now.

const ADMIN = 'hardening-admin-token-0123456789';
const IPN_SECRET = 'hardening-ipn-secret';
const AUTH = { authorization: `Bearer ${ADMIN}` };

let t: TestEngine;
let app: FastifyInstance;

beforeAll(async () => {
  t = await startTestEngine();
  const orders = createOrderService({ pool: t.db.pool, nowPayments: null, statusTokenSecret: 'z'.repeat(32), publicBaseUrl: () => 'http://127.0.0.1', log: t.log });
  app = await buildApp({
    config: loadConfig({ ADMIN_TOKEN: ADMIN }),
    pool: t.db.pool,
    boss: t.boss,
    engine: t.engine,
    log: t.log,
    statusTokenSecret: 'z'.repeat(32),
    ipn: createIpnService({ pool: t.db.pool, engine: t.engine, log: t.log }),
    ipnSecret: IPN_SECRET,
    orders,
  });
});
afterAll(async () => {
  await app.close();
  await t.close();
});

/** POSTs these exact bytes, signed over their parse (as NowPayments signs) unless a header is given. */
async function ipn(raw: string, signature?: string) {
  const res = await app.inject({ method: 'POST', url: '/webhooks/nowpayments', payload: raw, headers: { 'content-type': 'application/json', 'x-nowpayments-sig': signature ?? signIpn(JSON.parse(raw), IPN_SECRET) } });
  return { status: res.statusCode, body: res.json<{ status?: string; delivery_id?: string; message?: string }>() };
}

async function delivery(id: string | undefined) {
  const { rows } = await t.db.pool.query<{ status: string; problem: string | null; raw_body: string; body: unknown; payment_id: string | null }>(
    'SELECT status, problem, raw_body, body, payment_id FROM ipn_deliveries WHERE id = $1',
    [id],
  );
  return rows[0]!;
}

const payment = async (id: string) =>
  (await t.db.pool.query<{ order_id: string | null; version: number; state: string }>('SELECT order_id, version, state FROM payments WHERE payment_id = $1', [id])).rows[0] ?? null;

describe('one input layer: NUL, unpaired surrogates, depth and ranges are a 400 naming the field', () => {
  it.each([
    ['GET', '/api/payment-status?order_id=%00', 'querystring.order_id: must not contain a NUL character (U+0000)'],
    ['GET', '/api/payment-status?order_id=ok&token=a%00', 'querystring.token: must not contain a NUL character (U+0000)'],
    ['GET', '/pay/success?order_id=%00', 'querystring.order_id: must not contain a NUL character (U+0000)'],
    ['POST', '/admin/payments/%00/events', 'params.payment_id: must not contain a NUL character (U+0000)'],
    ['GET', '/admin/payments/%00', 'params.payment_id: must not contain a NUL character (U+0000)'],
    ['GET', '/admin/ipn-deliveries?payment_id=%00', 'querystring.payment_id: must not contain a NUL character (U+0000)'],
    ['GET', '/admin/payments?state=%00', 'querystring.state: must not contain a NUL character (U+0000)'],
    ['GET', '/admin/payments?stuck_for=99999999999999d', 'querystring.stuck_for: \'99999999999999d\' is longer than 10 years (3650d)'],
    ['GET', '/admin/payments?limit=1e400', 'querystring.limit:'],
  ])('%s %s', async (method, url, message) => {
    const res = await app.inject({ method: method as 'GET' | 'POST', url, headers: AUTH, payload: method === 'POST' ? { type: 'operator.retry', by: 'me' } : undefined });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toContain(message);
  });

  it('JSON bodies: an escaped NUL or a lone surrogate anywhere (values and keys), and deep nesting', async () => {
    const post = (url: string, payload: string) => app.inject({ method: 'POST', url, payload, headers: { ...AUTH, 'content-type': 'application/json' } });
    expect((await post('/api/orders', '{"telegram_user_id":"1","open_channel_id":"-100\\u0000","plan_id":"m"}')).json().message).toBe(
      'body.open_channel_id: must not contain a NUL character (U+0000)',
    );
    expect((await post('/admin/channels', '{"title":"\\udfff"}')).json().message).toMatch(/^body\.title: must not contain an unpaired UTF-16 surrogate/);
    expect((await post('/admin/payments/1/events', '{"type":"operator.retry","by":"me","note":{"\\u0000":1}}')).json().message).toMatch(/^body\.note\["\\u0000"\]: has a key that must not contain a NUL/);
    const deep = await post('/api/orders', `${'['.repeat(50_000)}${']'.repeat(50_000)}`);
    expect(deep.statusCode).toBe(400);
    expect(deep.json().message).toMatch(/is nested deeper than 32 levels$/);
    // An unauthenticated caller still learns nothing about the input rules: 401 first.
    expect((await app.inject({ url: '/admin/payments/%00' })).statusCode).toBe(401);
  });
});

describe('signed IPNs: stored, then applied or parked with a reason, never a 5xx', () => {
  it('a lone surrogate escape in order_id: parked naming the field; raw_body exact, the jsonb copy sanitised', async () => {
    const raw = '{"payment_id":8100000001,"payment_status":"finished","order_id":"o\\udfff"}';
    const res = await ipn(raw);
    expect(res).toMatchObject({ status: 200, body: { status: 'parked', message: 'kept for review: order_id: must not contain an unpaired UTF-16 surrogate (not valid Unicode)' } });
    const row = await delivery(res.body.delivery_id);
    expect(row).toMatchObject({ status: 'parked', raw_body: raw, body: { order_id: 'o\ufffd' }, payment_id: '8100000001' });
    expect(await payment('8100000001')).toBeNull();
    // NowPayments' retry of the same bytes: the same row, still parked, still 200.
    expect(await ipn(raw)).toMatchObject({ status: 200, body: { status: 'parked', delivery_id: res.body.delivery_id } });
  });

  it('an escaped NUL in a field the event does not use: parked naming the field', async () => {
    const raw = '{"payment_id":8100000002,"payment_status":"finished","order_id":"o2","order_description":"a\\u0000b"}';
    const res = await ipn(raw);
    expect(res).toMatchObject({ status: 200, body: { status: 'parked', message: 'kept for review: order_description: must not contain a NUL character (U+0000)' } });
    expect(await delivery(res.body.delivery_id)).toMatchObject({ raw_body: raw, body: { order_description: 'a\ufffdb' } });
  });

  it('the text \\u0000 (an escaped backslash) is ordinary text: applied, stored exactly (the old cleanup made it invalid JSON)', async () => {
    const raw = '{"payment_id":8100000003,"payment_status":"finished","order_id":"o3","order_description":"C:\\\\u0000"}';
    const res = await ipn(raw);
    expect(res).toMatchObject({ status: 200, body: { status: 'applied' } });
    expect(await delivery(res.body.delivery_id)).toMatchObject({ status: 'applied', raw_body: raw, body: { order_description: 'C:\\u0000' } });
  });

  it('a number beyond Postgres numeric in an unused field: applied; the jsonb copy falls back to the sanitised body', async () => {
    const raw = '{"payment_id":8100000004,"payment_status":"finished","order_id":"o4","fee":{"depositFee":1e999999}}';
    const res = await ipn(raw);
    expect(res).toMatchObject({ status: 200, body: { status: 'applied' } });
    expect(await delivery(res.body.delivery_id)).toMatchObject({ raw_body: raw, body: { fee: { depositFee: null } } });
  });

  it('"__proto__" added to a correctly signed body: 400 before anything is stored', async () => {
    const signature = signIpn({ payment_id: 8100000005, payment_status: 'finished' }, IPN_SECRET, 'js-sample');
    for (const raw of [
      '{"payment_id":8100000005,"payment_status":"finished","__proto__":{"actually_paid":1}}',
      '{"payment_id":8100000005,"payment_status":"finished","\\u005f_proto__":{"actually_paid":1}}',
      '{"payment_id":8100000005,"payment_status":"finished","fee":{"constructor":{"prototype":{"x":1}}}}',
    ]) {
      expect(await ipn(raw, signature)).toMatchObject({ status: 400, body: { message: 'body must not contain a "__proto__" or "constructor.prototype" key' } });
    }
    expect(await ipn('{"payment_id":8100000005,"payment_status":"finished"}', signature)).toMatchObject({ status: 200, body: { status: 'applied' } });
  });

  it('deep nesting: 400 (no stack overflow), signed or not', async () => {
    const raw = `{"payment_id":8100000006,"payment_status":"finished","x":${'['.repeat(30_000)}${']'.repeat(30_000)}}`; // within the 64 KiB limit
    expect(await ipn(raw, 'a'.repeat(128))).toMatchObject({ status: 400, body: { message: 'body is nested deeper than 32 levels' } });
  });

  it('bytes that are not UTF-8: 400 (they are not JSON), nothing stored', async () => {
    const res = await app.inject({ method: 'POST', url: '/webhooks/nowpayments', payload: Buffer.from([0x7b, 0x22, 0xed, 0xbf, 0xbf, 0x22, 0x3a, 0x31, 0x7d]), headers: { 'x-nowpayments-sig': 'a'.repeat(128) } });
    expect(res.statusCode).toBe(400);
  });

  it('ids and amounts as strings, padded, with leading zeros or empty: the same payment, applied', async () => {
    expect(await ipn('{"payment_id":"0008100000007","payment_status":"waiting","order_id":"o7","pay_amount":" 10.50 ","invoice_id":"","parent_payment_id":""}')).toMatchObject({
      status: 200,
      body: { status: 'applied' },
    });
    expect(await ipn('{"payment_id":8100000007,"payment_status":"finished","order_id":"o7","pay_amount":10.5,"actually_paid":"10.5"}')).toMatchObject({ status: 200, body: { status: 'applied' } });
    expect(await payment('8100000007')).toMatchObject({ order_id: 'o7', version: 2 });
  });

  it('an order_id other than the payment\'s: parked for review with both values; the payment is unchanged', async () => {
    expect(await ipn('{"payment_id":8100000008,"payment_status":"waiting","order_id":"order-one"}')).toMatchObject({ body: { status: 'applied' } });
    const before = await payment('8100000008');
    const res = await ipn('{"payment_id":8100000008,"payment_status":"finished","order_id":"order-two","actually_paid":10,"pay_amount":10}');
    expect(res).toMatchObject({ status: 200, body: { status: 'parked' } });
    expect((await delivery(res.body.delivery_id)).problem).toBe('order_id "order-two" differs from order_id "order-one" of payment 8100000008; the payment is unchanged');
    expect(await payment('8100000008')).toEqual(before);
    // The same order goes through.
    expect(await ipn('{"payment_id":8100000008,"payment_status":"finished","order_id":"order-one","actually_paid":10,"pay_amount":10}')).toMatchObject({ body: { status: 'applied' } });
  });

  it('applying fails the same way every time (Postgres refuses a value): parked with the reason, not left "stored"', async () => {
    await t.db.pool.query(`
      CREATE FUNCTION refuse_value() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.payment_id = '8100000009' THEN RAISE EXCEPTION 'invalid byte sequence' USING ERRCODE = '22021'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_value BEFORE INSERT ON payment_journal FOR EACH ROW EXECUTE FUNCTION refuse_value();`);
    try {
      const res = await ipn('{"payment_id":8100000009,"payment_status":"finished","order_id":"o9"}');
      expect(res).toMatchObject({ status: 200, body: { status: 'parked' } });
      expect((await delivery(res.body.delivery_id)).problem).toBe('applying np.finished failed and would fail again: invalid byte sequence');
    } finally {
      await t.db.pool.query('DROP TRIGGER refuse_value ON payment_journal');
    }
  });
});
