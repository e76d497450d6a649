import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PaymentStatus } from '../nowpayments/ipn.schema.js';
import { signIpn } from '../nowpayments/signature.js';
import type { FakeInvoice, FakePayment, PayOptions, SendIpnOptions, SentIpn, RecordedRequest, FakeNowPayments, FakeNowPaymentsOptions } from './nowpayments.fake.types.js';

// A stand-in for api.nowpayments.io: the invoice and payment endpoints the engine uses, plus a sender
// for signed IPNs. Shapes follow NowPayments' documented responses, including their inconsistencies
// (invoice id is a string in the invoice, a number in the payment; price_amount a string in the invoice,
// a number in the payment).

export type { FakeInvoice, FakePayment, PayOptions, SendIpnOptions, SentIpn, RecordedRequest, FakeNowPayments, FakeNowPaymentsOptions } from './nowpayments.fake.types.js';

/**
 * Ids that grow with the clock: milliseconds since the epoch (13 digits, still far below 2^53). A run
 * that starts later starts above every id an earlier run handed out, unless that run made more than one
 * invoice (or payment) per millisecond on average.
 */
export function idsFromClock(now = Date.now()): { invoiceId: number; paymentId: number } {
  return { invoiceId: now, paymentId: now };
}

// Fields GET /v1/payment/:id returns; the rest of FakePayment only travels in IPNs.
const PAYMENT_FIELDS = [
  'payment_id',
  'invoice_id',
  'payment_status',
  'pay_address',
  'price_amount',
  'price_currency',
  'pay_amount',
  'actually_paid',
  'pay_currency',
  'order_id',
  'order_description',
  'purchase_id',
  'outcome_amount',
  'outcome_currency',
  'created_at',
  'updated_at',
] as const;

const PAID: ReadonlySet<PaymentStatus> = new Set(['confirming', 'confirmed', 'sending', 'finished']);

function paymentView(p: FakePayment): Record<string, unknown> {
  const view: Record<string, unknown> = {};
  for (const key of PAYMENT_FIELDS) view[key] = p[key];
  if (p.parent_payment_id !== null) view.parent_payment_id = p.parent_payment_id;
  return view;
}

function ipnBody(p: FakePayment, asStrings: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {
    ...p,
    payin_extra_id: p.payin_extra_id ?? null,
    actually_paid_at_fiat: p.actually_paid_at_fiat ?? 0,
  };
  if (asStrings) {
    for (const key of ['payment_id', 'parent_payment_id', 'invoice_id', 'price_amount', 'pay_amount', 'actually_paid', 'outcome_amount']) {
      const v = body[key];
      if (typeof v === 'number') body[key] = String(v);
    }
  }
  return body;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function apiError(res: ServerResponse, status: number, code: string, message: string): void {
  send(res, status, { status: false, statusCode: status, code, message });
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const now = (): string => new Date().toISOString();
const tronAddress = (): string => `T${randomBytes(24).toString('base64url').replace(/[-_]/g, 'x').slice(0, 33)}`;

const nullableString = (v: unknown): string | null => (typeof v === 'string' ? v : null);

export async function startFakeNowPayments(options: FakeNowPaymentsOptions): Promise<FakeNowPayments> {
  const invoices = new Map<string, FakeInvoice>();
  const payments = new Map<number, FakePayment>();
  /** Each invoice's payments in the order they were made (a repeat deposit adds one). */
  const paymentsOfInvoice = new Map<number, FakePayment[]>();
  const requests: RecordedRequest[] = [];
  const ipns: SentIpn[] = [];
  // Realistic widths (10 digits, or 13 from the clock) so a consumer that stores ids in a 32-bit column fails here, not in prod.
  let nextInvoice = options.firstIds?.invoiceId ?? 4_522_625_843;
  let nextPayment = options.firstIds?.paymentId ?? 5_077_125_051;

  function createInvoice(body: Record<string, unknown>, res: ServerResponse, baseUrl: string): void {
    const price = body.price_amount;
    if (price === undefined || price === null || price === '') {
      apiError(res, 400, 'INVALID_REQUEST_PARAMS', '"price_amount" is required');
      return;
    }
    if (!(typeof price === 'number' || (typeof price === 'string' && /^\d+(\.\d+)?$/.test(price))) || Number(price) <= 0) {
      apiError(res, 400, 'INVALID_REQUEST_PARAMS', '"price_amount" must be a positive number');
      return;
    }
    if (typeof body.price_currency !== 'string' || body.price_currency === '') {
      apiError(res, 400, 'INVALID_REQUEST_PARAMS', '"price_currency" is required');
      return;
    }
    const id = String(nextInvoice++);
    const created = now();
    const invoice: FakeInvoice = {
      id,
      order_id: nullableString(body.order_id),
      order_description: nullableString(body.order_description),
      price_amount: String(price),
      price_currency: body.price_currency,
      pay_currency: nullableString(body.pay_currency),
      ipn_callback_url: nullableString(body.ipn_callback_url),
      invoice_url: options.invoiceUrl?.(id) ?? `${baseUrl}/payment/?iid=${id}`,
      success_url: nullableString(body.success_url),
      cancel_url: nullableString(body.cancel_url),
      created_at: created,
      updated_at: created,
    };
    invoices.set(id, invoice);
    send(res, 200, invoice);
  }

  function listPayments(query: URLSearchParams, res: ServerResponse): void {
    const invoiceId = query.get('invoiceId');
    const limit = Math.min(Math.max(Number(query.get('limit') ?? 10) || 10, 1), 500);
    const page = Math.max(Number(query.get('page') ?? 0) || 0, 0);
    const all = [...payments.values()].filter((p) => invoiceId === null || String(p.invoice_id) === invoiceId);
    send(res, 200, {
      data: all.slice(page * limit, page * limit + limit).map(paymentView),
      limit,
      page,
      pagesCount: Math.ceil(all.length / limit),
      total: all.length,
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const text = await readBody(req);
    let body: unknown = undefined;
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        requests.push({ method: req.method ?? '', path: url.pathname + url.search, body: text, headers: req.headers });
        apiError(res, 400, 'INVALID_REQUEST_PARAMS', 'body is not JSON');
        return;
      }
    }
    requests.push({ method: req.method ?? '', path: url.pathname + url.search, body, headers: req.headers });

    if (req.method === 'GET' && url.pathname === '/v1/status') {
      send(res, 200, { message: 'OK' });
      return;
    }
    if (req.headers['x-api-key'] !== options.apiKey) {
      apiError(res, 403, 'INVALID_API_KEY', 'Invalid api key');
      return;
    }
    if (req.method === 'POST' && url.pathname === '/v1/invoice') {
      const obj = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
      createInvoice(obj, res, address());
      return;
    }
    // The real API answers both spellings; our client uses the trailing slash.
    if (req.method === 'GET' && (url.pathname === '/v1/payment' || url.pathname === '/v1/payment/')) {
      listPayments(url.searchParams, res);
      return;
    }
    const one = /^\/v1\/payment\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && one) {
      const payment = payments.get(Number(one[1]));
      if (payment === undefined) apiError(res, 404, 'PAYMENT_NOT_FOUND', 'Payment not found');
      else send(res, 200, paymentView(payment));
      return;
    }
    apiError(res, 404, 'NOT_FOUND', `Cannot ${req.method ?? ''} ${url.pathname}`);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) apiError(res, 500, 'INTERNAL_ERROR', String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = (): string => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  function findInvoice(ref: string | number): FakeInvoice {
    const key = String(ref);
    const invoice = invoices.get(key) ?? [...invoices.values()].find((i) => i.order_id === key);
    if (invoice === undefined) throw new Error(`fake NowPayments: no invoice with id or order_id ${key}`);
    return invoice;
  }

  function pay(ref: string | number, o: PayOptions): FakePayment {
    const invoice = findInvoice(ref);
    const invoiceId = Number(invoice.id);
    const ofInvoice = paymentsOfInvoice.get(invoiceId) ?? [];
    let payment: FakePayment | undefined;
    if (o.paymentId !== undefined) {
      payment = payments.get(o.paymentId);
      if (payment === undefined) throw new Error(`fake NowPayments: no payment ${o.paymentId}`);
    } else if (!o.child) {
      payment = ofInvoice.at(-1);
    }

    if (payment === undefined) {
      const payCurrency = o.payCurrency ?? invoice.pay_currency ?? 'usdttrc20';
      const parent = o.child ? ofInvoice[0] : undefined;
      if (o.child && parent === undefined) throw new Error('fake NowPayments: a child payment needs a first payment');
      const created = now();
      // A 1:1 rate keeps expected amounts obvious in tests; pass payAmount for anything else.
      const payAmount = o.payAmount ?? Number(invoice.price_amount);
      payment = {
        payment_id: nextPayment++,
        parent_payment_id: parent?.payment_id ?? null,
        invoice_id: invoiceId,
        payment_status: 'waiting',
        // A repeat deposit goes to the same address, which is what makes it a child.
        pay_address: parent?.pay_address ?? o.payAddress ?? tronAddress(),
        price_amount: Number(invoice.price_amount),
        price_currency: invoice.price_currency,
        pay_amount: payAmount,
        actually_paid: 0,
        pay_currency: payCurrency,
        order_id: invoice.order_id,
        order_description: invoice.order_description,
        purchase_id: String(6_084_744_717 + payments.size),
        outcome_amount: 0,
        outcome_currency: o.outcomeCurrency ?? payCurrency,
        created_at: created,
        updated_at: created,
        fee: { currency: payCurrency, depositFee: 0.09853637216235617, withdrawalFee: 0, serviceFee: 0 },
        payment_extra_ids: [],
      };
      payments.set(payment.payment_id, payment);
      paymentsOfInvoice.set(invoiceId, [...ofInvoice, payment]);
    }

    const p = payment;
    p.payment_status = o.status;
    if (o.payAmount !== undefined) p.pay_amount = o.payAmount;
    if (o.payCurrency !== undefined) p.pay_currency = o.payCurrency;
    if (o.outcomeCurrency !== undefined) p.outcome_currency = o.outcomeCurrency;
    if (o.actuallyPaid !== undefined) p.actually_paid = o.actuallyPaid;
    else if (PAID.has(o.status)) p.actually_paid = p.pay_amount;
    p.outcome_amount = o.outcomeAmount ?? p.actually_paid;
    // The other payments made to this invoice's address (repeat deposits).
    p.payment_extra_ids = (paymentsOfInvoice.get(invoiceId) ?? []).filter((q) => q.payment_id !== p.payment_id).map((q) => q.payment_id);
    p.updated_at = now();
    Object.assign(p, o.fields);
    // A snapshot: the test can keep it and re-send this state later, as a stale or duplicate IPN.
    return structuredClone(p);
  }

  function ipnRequest(paymentOrId: FakePayment | number, o: SendIpnOptions = {}) {
    const payment = typeof paymentOrId === 'number' ? payments.get(paymentOrId) : paymentOrId;
    if (payment === undefined) throw new Error(`fake NowPayments: no payment ${String(paymentOrId)}`);
    const url = o.callbackUrl ?? invoices.get(String(payment.invoice_id))?.ipn_callback_url;
    if (!url) throw new Error('fake NowPayments: no ipn_callback_url on the invoice and no callbackUrl given');

    const body = ipnBody(structuredClone(payment), o.asStrings ?? false);
    const signature = o.signature === undefined ? signIpn(body, o.secret ?? options.ipnSecret, o.form ?? 'recursive') : o.signature;
    o.tamper?.(body);

    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (signature !== null) headers['x-nowpayments-sig'] = signature;
    return { url, headers, body, signature, bytes: JSON.stringify(body) };
  }

  async function sendIpn(paymentOrId: FakePayment | number, o: SendIpnOptions = {}): Promise<{ status: number; body: string }> {
    const { url, headers, body, signature, bytes } = ipnRequest(paymentOrId, o);
    const res = await fetch(url, { method: 'POST', headers, body: bytes, signal: AbortSignal.timeout(10_000) });
    const responseBody = await res.text();
    ipns.push({ url, body, signature, status: res.status, responseBody });
    return { status: res.status, body: responseBody };
  }

  return {
    url: address(),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
    invoices,
    payments,
    requests,
    ipns,
    pay,
    sendIpn,
    ipnRequest: (payment, o) => {
      const { url, headers, bytes } = ipnRequest(payment, o);
      return { url, headers, body: bytes };
    },
    raiseIdsAbove(floor) {
      if (floor.invoiceId != null && nextInvoice <= floor.invoiceId) nextInvoice = floor.invoiceId + 1;
      if (floor.paymentId != null && nextPayment <= floor.paymentId) nextPayment = floor.paymentId + 1;
    },
    nextIds: () => ({ invoiceId: nextInvoice, paymentId: nextPayment }),
  };
}
