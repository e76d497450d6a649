import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseIpn } from '../nowpayments/ipn.schema.js';
import { verifyIpnSignature } from '../nowpayments/signature.js';
import { startFakeNowPayments, type FakeNowPayments } from './nowpayments.fake.js';

const API_KEY = 'test-api-key';
const IPN_SECRET = 'test-ipn-secret';

interface Received {
  headers: IncomingHttpHeaders;
  body: unknown;
}

// A minimal IPN receiver: resolves each POST in arrival order, answers 200.
async function startReceiver(): Promise<{ url: string; server: Server; next(): Promise<Received> }> {
  const queue: Received[] = [];
  const waiters: ((r: Received) => void)[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown };
      const w = waiters.shift();
      if (w) w(r);
      else queue.push(r);
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ipn`,
    server,
    next: () => {
      const r = queue.shift();
      return r ? Promise.resolve(r) : new Promise<Received>((resolve) => waiters.push(resolve));
    },
  };
}

let np: FakeNowPayments | undefined;
let receiver: Awaited<ReturnType<typeof startReceiver>> | undefined;

afterEach(async () => {
  await np?.close();
  receiver?.server.closeAllConnections();
  await new Promise((resolve) => (receiver ? receiver.server.close(resolve) : resolve(undefined)));
  np = undefined;
  receiver = undefined;
});

async function createInvoice(url: string, ipnUrl: string, apiKey = API_KEY): Promise<Response> {
  return fetch(`${url}/v1/invoice`, {
    method: 'POST',
    headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
    body: JSON.stringify({
      price_amount: 12.5,
      price_currency: 'usd',
      order_id: 'ord_1',
      order_description: 'Premium, 30 days',
      ipn_callback_url: ipnUrl,
      success_url: 'https://example.test/ok',
      cancel_url: 'https://example.test/cancel',
    }),
  });
}

describe('fake NowPayments', () => {
  it('creates an invoice, pays it and delivers a verifiable signed IPN', async () => {
    np = await startFakeNowPayments({ apiKey: API_KEY, ipnSecret: IPN_SECRET });
    receiver = await startReceiver();

    const res = await createInvoice(np.url, receiver.url);
    expect(res.status).toBe(200);
    const invoice = (await res.json()) as { id: string; price_amount: string; ipn_callback_url: string };
    expect(invoice.id).toMatch(/^\d+$/);
    expect(invoice.price_amount).toBe('12.5');
    expect(invoice.ipn_callback_url).toBe(receiver.url);

    const payment = np.pay('ord_1', { status: 'finished' });
    expect(typeof payment.payment_id).toBe('number');
    expect(payment.actually_paid).toBe(12.5);

    const [delivery, received] = await Promise.all([np.sendIpn(payment), receiver.next()]);
    expect(delivery.status).toBe(200);
    expect(verifyIpnSignature(received.body, received.headers['x-nowpayments-sig'] as string, IPN_SECRET)).toBe(true);
    expect(received.body).toMatchObject({ fee: { currency: 'usdttrc20' }, payment_extra_ids: [] });
    const parsed = parseIpn(received.body);
    expect(parsed).toMatchObject({ ok: true, ipn: { payment_status: 'finished', order_id: 'ord_1', actually_paid: '12.5' } });

    // Reconciliation endpoints see the same payment.
    const one = await fetch(`${np.url}/v1/payment/${payment.payment_id}`, { headers: { 'x-api-key': API_KEY } });
    expect(await one.json()).toMatchObject({ payment_id: payment.payment_id, payment_status: 'finished', invoice_id: Number(invoice.id) });
    const list = await fetch(`${np.url}/v1/payment?invoiceId=${invoice.id}`, { headers: { 'x-api-key': API_KEY } });
    expect(await list.json()).toMatchObject({ total: 1, page: 0, pagesCount: 1, data: [{ payment_id: payment.payment_id }] });
    // Both spellings of the list path, as the real API; our client (src/nowpayments/client.ts) uses the slash.
    const slashed = await fetch(`${np.url}/v1/payment/?invoiceId=${invoice.id}`, { headers: { 'x-api-key': API_KEY } });
    expect(await slashed.json()).toMatchObject({ total: 1, data: [{ payment_id: payment.payment_id }] });
  });

  it('signs each form, and tampering, wrong secrets and missing headers fail verification', async () => {
    np = await startFakeNowPayments({ apiKey: API_KEY, ipnSecret: IPN_SECRET });
    receiver = await startReceiver();
    await createInvoice(np.url, receiver.url);
    np.pay('ord_1', { status: 'waiting' });
    // A repeat deposit: a child payment, so payment_extra_ids is a non-empty array.
    const child = np.pay('ord_1', { status: 'partially_paid', child: true, actuallyPaid: '3.1' });
    expect(child.parent_payment_id).not.toBeNull();

    const verdict = async (options: Parameters<FakeNowPayments['sendIpn']>[1]): Promise<boolean> => {
      const [, r] = await Promise.all([np!.sendIpn(child, options), receiver!.next()]);
      const sig = r.headers['x-nowpayments-sig'];
      return verifyIpnSignature(r.body, typeof sig === 'string' ? sig : undefined, IPN_SECRET);
    };

    expect(await verdict({ form: 'recursive' })).toBe(true);
    expect(await verdict({ form: 'js-sample' })).toBe(true);
    expect(await verdict({ asStrings: true })).toBe(true);
    expect(await verdict({ form: 'legacy' })).toBe(false); // nested body: legacy refused
    expect(await verdict({ tamper: (b) => void (b.actually_paid = 100) })).toBe(false);
    expect(await verdict({ secret: 'nope' })).toBe(false);
    expect(await verdict({ signature: null })).toBe(false);
    expect(np.ipns).toHaveLength(7);
  });

  it('rejects a wrong api key and unknown payments', async () => {
    np = await startFakeNowPayments({ apiKey: API_KEY, ipnSecret: IPN_SECRET });
    const res = await createInvoice(np.url, 'http://127.0.0.1:9/ipn', 'wrong');
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ code: 'INVALID_API_KEY' });
    const missing = await fetch(`${np.url}/v1/payment/1`, { headers: { 'x-api-key': API_KEY } });
    expect(missing.status).toBe(404);
    expect(np.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /v1/invoice', 'GET /v1/payment/1']);
  });
});
