import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { IPN_PATH } from '../src/http/routes/ipn.route.js';
import { signStatusToken } from '../src/orders/status-token.js';
import { signIpn } from '../src/nowpayments/signature.js';
import { startService } from '../src/service.js';
import { measure, percentile } from './support.js';

// IPN ingest and status reads over real HTTP on loopback. Every IPN is a new payment (store the delivery,
// create the machine, journal row, route job: the full first-event path), signed like NowPayments signs.

export interface HttpBenchResult {
  clients: number;
  ops: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Answers other than the expected one (should be 0). */
  failures: number;
}

export interface IpnBenchOptions {
  /** Base URL of the running service, e.g. http://127.0.0.1:3000 (loopback only). */
  url: string;
  ipnSecret: string;
  clients: number;
  /** Bounded duration of the measurement. */
  seconds: number;
}

function assertLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (host !== '127.0.0.1' && host !== 'localhost' && host !== '[::1]') throw new Error(`benchmarks only run against loopback, not ${host}`);
}

// A run-unique id range per client so repeated runs on one database never collide.
let runBase = 9_000_000_000 + (Date.now() % 100_000) * 10_000;

function ipnBody(paymentId: number): Record<string, unknown> {
  return {
    payment_id: paymentId,
    parent_payment_id: null,
    invoice_id: 4_500_000_000 + (paymentId % 1_000_000),
    payment_status: 'finished',
    pay_address: 'TNDFkiSmBQorNFacb3735q8MnT29sn8BLn',
    payin_extra_id: null,
    price_amount: 12.5,
    price_currency: 'usd',
    pay_amount: 12.61,
    actually_paid: 12.61,
    actually_paid_at_fiat: 0,
    pay_currency: 'usdttrc20',
    order_id: `ord_bench_${paymentId}`,
    order_description: 'Premium channel, 30 days',
    purchase_id: String(6_000_000_000 + paymentId),
    outcome_amount: 12.5,
    outcome_currency: 'usdttrc20',
    payment_extra_ids: [],
    fee: { currency: 'usdttrc20', depositFee: 0.1, withdrawalFee: 0, serviceFee: 0 },
    updated_at: Date.now(),
  };
}

async function timed(latencies: number[], call: () => Promise<boolean>, failures: { n: number }): Promise<void> {
  const started = performance.now();
  const ok = await call();
  latencies.push(performance.now() - started);
  if (!ok) failures.n++;
}

function result(clients: number, ops: number, opsPerSecond: number, latencies: number[], failures: number): HttpBenchResult {
  const sorted = latencies.sort((a, b) => a - b);
  return { clients, ops, rps: opsPerSecond, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), failures };
}

/** Signed IPNs for new payments from `clients` concurrent loops for `seconds`. */
export async function benchIpn(options: IpnBenchOptions): Promise<HttpBenchResult> {
  assertLoopback(options.url);
  const webhook = `${options.url.replace(/\/+$/, '')}${IPN_PATH}`;
  const base = runBase;
  runBase += options.clients * 10_000_000;
  const latencies: number[] = [];
  const failures = { n: 0 };
  const { ops, opsPerSecond } = await measure(options.clients, options.seconds, (client, i) => {
    const body = ipnBody(base + client * 10_000_000 + i);
    const headers = { 'content-type': 'application/json', 'x-nowpayments-sig': signIpn(body, options.ipnSecret) };
    return timed(latencies, async () => {
      const res = await fetch(webhook, { method: 'POST', headers, body: JSON.stringify(body) });
      const answer = (await res.json()) as { status?: string };
      return res.status === 200 && answer.status === 'applied';
    }, failures);
  });
  return result(options.clients, ops, opsPerSecond, latencies, failures.n);
}

export interface StatusBenchOptions {
  url: string;
  orderId: string;
  token?: string;
  clients: number;
  seconds: number;
}

/** GET /api/payment-status for one order (pure reads). The service's STATUS_RATE_LIMIT must be above the rate, or this measures 429s. */
export async function benchStatusReads(options: StatusBenchOptions): Promise<HttpBenchResult> {
  assertLoopback(options.url);
  const query = new URLSearchParams({ order_id: options.orderId, ...(options.token ? { token: options.token } : {}) });
  const target = `${options.url.replace(/\/+$/, '')}/api/payment-status?${query}`;
  const latencies: number[] = [];
  const failures = { n: 0 };
  const { ops, opsPerSecond } = await measure(options.clients, options.seconds, () =>
    timed(latencies, async () => {
      const res = await fetch(target);
      await res.arrayBuffer();
      return res.status === 200;
    }, failures),
  );
  return result(options.clients, ops, opsPerSecond, latencies, failures.n);
}

export interface IpnBenchService {
  url: string;
  ipnSecret: string;
  /** An order with a confirmed payment, for status reads. */
  orderId: string;
  token: string;
  close(): Promise<void>;
}

/**
 * The service with no effect actors (intake alone) on `databaseUrl` (migrated on start), listening on a free loopback
 * port, with known secrets and the status rate limit lifted so the bench measures reads, not 429s.
 */
export async function startIpnBenchService(databaseUrl: string): Promise<IpnBenchService> {
  const ipnSecret = 'bench-ipn-secret';
  const statusSecret = 'bench-status-token-secret-0123456789abcdef';
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: databaseUrl,
    PORT: '0',
    LOG_LEVEL: 'silent',
    NOWPAYMENTS_API_URL: 'http://127.0.0.1:9',
    NOWPAYMENTS_API_KEY: 'bench-api-key',
    NOWPAYMENTS_IPN_SECRET: ipnSecret,
    STATUS_TOKEN_SECRET: statusSecret,
    STATUS_RATE_LIMIT: '1000000',
    RECONCILE_EVERY: '0 0 1 1 *',
  });
  const service = await startService(config, createLogger('silent'), { effects: [] });
  const address = service.app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  // One order whose payment the status reads follow: an IPN for an order we never saw creates its payment.
  const orderId = 'ord_bench_status';
  const body = { ...ipnBody(8_999_999_999), order_id: orderId };
  const res = await fetch(`${url}${IPN_PATH}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-nowpayments-sig': signIpn(body, ipnSecret) },
    body: JSON.stringify(body),
  });
  if (res.status !== 200) throw new Error(`bench setup IPN answered ${res.status}`);
  return { url, ipnSecret, orderId, token: signStatusToken(statusSecret, orderId), close: () => service.close() };
}
