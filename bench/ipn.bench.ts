import { signIpn } from '../src/nowpayments/signature.js';
import { closedLoop, closedLoopOnce, type HttpClient, type LoadResult } from './http-load.js';

// IPN ingest, duplicate IPNs and status reads over real HTTP on loopback, against a service running in
// its own process (bench/service-process.ts). Every ingested IPN is a new payment, signed like
// NowPayments signs (status `waiting`: store the delivery, create the machine, journal row; nothing is
// enqueued, so no actor work runs beside the measurement). A duplicate is the exact same bytes re-sent:
// either round robin (the same bodies again and again) or each exactly once (a body the service has
// answered once it remembers, so only a first re-send measures the path without that memory).

export const IPN_PATH = '/webhooks/nowpayments';

export interface SignedIpn {
  bytes: Buffer;
  headers: Record<string, string>;
}

// A run-unique id range so repeated runs on one database never collide.
let nextPaymentId = 9_000_000_000 + (Date.now() % 100_000) * 10_000;

export function newPaymentIpn(ipnSecret: string, status = 'waiting'): SignedIpn {
  const paymentId = nextPaymentId++;
  const paid = status === 'waiting' ? 0 : 12.61;
  const body = {
    payment_id: paymentId,
    parent_payment_id: null,
    invoice_id: 4_500_000_000 + (paymentId % 1_000_000),
    payment_status: status,
    pay_address: 'TNDFkiSmBQorNFacb3735q8MnT29sn8BLn',
    payin_extra_id: null,
    price_amount: 12.5,
    price_currency: 'usd',
    pay_amount: 12.61,
    actually_paid: paid,
    actually_paid_at_fiat: 0,
    pay_currency: 'usdttrc20',
    order_id: `ord_bench_${paymentId}`,
    order_description: 'Premium channel, 30 days',
    purchase_id: String(6_000_000_000 + paymentId),
    outcome_amount: paid,
    outcome_currency: 'usdttrc20',
    payment_extra_ids: [],
    fee: { currency: 'usdttrc20', depositFee: 0.1, withdrawalFee: 0, serviceFee: 0 },
    created_at: new Date().toISOString(),
    updated_at: new Date().toISOString(),
  };
  return { bytes: Buffer.from(JSON.stringify(body)), headers: { 'content-type': 'application/json', 'x-nowpayments-sig': signIpn(body, ipnSecret) } };
}

async function postIpn(http: HttpClient, ipn: SignedIpn, expected: string): Promise<true | string> {
  const res = await http.request('POST', IPN_PATH, ipn.headers, ipn.bytes);
  if (res.status !== 200) return `HTTP ${res.status}: ${res.body.slice(0, 200)}`;
  const status = (JSON.parse(res.body) as { status?: string }).status;
  return status === expected ? true : `answered "${status}", expected "${expected}"`;
}

/**
 * New-payment IPNs signed ahead of a window, as NowPayments would have them ready: signing is the
 * sender's work, not the service's, and on 2 cores the generator's CPU is taken from both. When the
 * window outruns them, the rest are signed as they are sent.
 */
export function presignedIpns(ipnSecret: string, count: number): () => SignedIpn {
  const ready = Array.from({ length: count }, () => newPaymentIpn(ipnSecret));
  let next = 0;
  return () => ready[next++] ?? newPaymentIpn(ipnSecret);
}

/** Signed IPNs, each for a new payment, from `clients` loops; every IPN sent is appended to `sent` (for the duplicate run). */
export function benchIngest(http: HttpClient, ipns: () => SignedIpn, clients: number, seconds: number, sent: SignedIpn[]): Promise<LoadResult> {
  return closedLoop(clients, seconds, async () => {
    const ipn = ipns();
    const outcome = await postIpn(http, ipn, 'applied');
    if (outcome === true) sent.push(ipn);
    return outcome;
  });
}

/** Each of `ipns` (new payments) sent once, until they run out or `seconds` are up; those answered "applied" are appended to `sent`. */
export function benchIngestOnce(http: HttpClient, ipns: SignedIpn[], clients: number, seconds: number, sent: SignedIpn[]): Promise<LoadResult> {
  return closedLoopOnce(clients, seconds, ipns, async (ipn) => {
    const outcome = await postIpn(http, ipn, 'applied');
    if (outcome === true) sent.push(ipn);
    return outcome;
  });
}

/** The same bytes as IPNs already applied, again: each must be answered "duplicate". */
export function benchDuplicates(http: HttpClient, applied: SignedIpn[], clients: number, seconds: number): Promise<LoadResult> {
  if (applied.length === 0) throw new Error('no applied IPNs to repeat');
  let next = 0;
  return closedLoop(clients, seconds, () => postIpn(http, applied[next++ % applied.length]!, 'duplicate'));
}

/** The same bytes as IPNs already applied, each sent EXACTLY ONCE (a second send would be remembered): ends when they run out or `seconds` are up. */
export function benchDuplicatesOnce(http: HttpClient, applied: SignedIpn[], clients: number, seconds: number): Promise<LoadResult> {
  if (applied.length === 0) throw new Error('no applied IPNs to repeat');
  return closedLoopOnce(clients, seconds, applied, (ipn) => postIpn(http, ipn, 'duplicate'));
}

export interface StatusTarget {
  orderId: string;
  token: string | null;
}

/** GET /api/payment-status round-robin over `targets` (the service's STATUS_RATE_LIMIT must be above the rate, or this measures 429s). */
export function benchStatusReads(http: HttpClient, targets: StatusTarget[], clients: number, seconds: number): Promise<LoadResult> {
  if (targets.length === 0) throw new Error('no orders to read the status of');
  const paths = targets.map((t) => `/api/payment-status?${new URLSearchParams({ order_id: t.orderId, ...(t.token ? { token: t.token } : {}) })}`);
  let next = 0;
  return closedLoop(clients, seconds, async () => {
    const res = await http.request('GET', paths[next++ % paths.length]!);
    return res.status === 200 ? true : `HTTP ${res.status}: ${res.body.slice(0, 200)}`;
  });
}
