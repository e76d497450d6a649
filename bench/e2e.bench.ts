import pg from 'pg';
import { startFakeNowPayments, type FakePayment } from '../src/sandbox/nowpayments.fake.js';
import { startFakeTelegram, type TelegramCall } from '../src/sandbox/telegram.fake.js';
import { createMeter, withoutSettle, type Costs } from './costs.js';
import { httpClient, type HttpClient, type LoadResult } from './http-load.js';
import { benchDuplicates, benchDuplicatesOnce, benchIngest, benchIngestOnce, benchStatusReads, IPN_PATH, newPaymentIpn, presignedIpns, type SignedIpn, type StatusTarget } from './ipn.bench.js';
import { createDatabase } from './postgres.js';
import { prepareRawLimit } from './raw-limit.js';
import { parseEnvList, startServiceProcess } from './service-process.js';
import { fmt, percentile, type BenchDatabase } from './support.js';

// End to end, the whole service as `npm start` runs it, in a CHILD PROCESS (node --import tsx src/main.ts)
// on its own database; the fake NowPayments, the fake Bot API and the load generator live in the bench
// process, all on loopback. Per payment the "4-IPN pattern": signed IPNs waiting -> confirming ->
// finished, plus the finished IPN's exact bytes once more (a duplicate), then route -> invite -> the DM
// (sendMessage) at the fake Bot API. Every figure is measured in this one run; limits are measured on the
// same database in the same run; nothing here is a test (no timed assertion anywhere).
//
// Reproduce (BENCH_SECONDS=3 is the short default, about 3.5 minutes; every figure comes from one command):
//   npm run bench -- e2e                       this section alone (same as BENCH_ONLY=e2e npm run bench)
//   BENCH_SECONDS=10 npm run bench -- e2e      longer windows, steadier percentiles
//   BENCH_E2E_PARTS=open npm run bench -- e2e  some parts only (closed, open, intake; the warm-up and idle rows always run)
//   npm run bench                              everything: engine, e2e, payouts
//
//   figure                                    how it is made                                  knobs
//   closed loop payments/s                    BENCH_BUYERS buyers, each paying one payment     BENCH_BUYERS=64
//                                             after another as soon as its DM arrived, for
//                                             BENCH_SECONDS; DMs / (until the last buyer is
//                                             done); the pool of prepared payments is 4x the
//                                             warm-up pace (a note says when it ran out)      BENCH_E2E_POOL_RATE=250 (cap, /s)
//   (all windows)                             after a warm-up of payments, not counted         BENCH_E2E_WARMUP=500
//   p50/p99/max at 20, 50, 100 payments/s     open loop: payment n starts at n/rate (waiting   BENCH_E2E_RATES=20,50,100
//                                             at its slot, confirming +50 ms, finished
//                                             +100 ms, the duplicate when finished is
//                                             answered), rate x BENCH_SECONDS payments;
//                                             latency = finished IPN sent -> sendMessage to
//                                             that buyer received by the fake Bot API
//   xacts, stmts, PG CPU, svc CPU, WAL /pay   bench/costs.ts over the window, closed once       BENCH_STATS_FLUSH_MS=10500
//   (and writing xacts, rows, jobs, WAL by    every job the payments caused has finished and
//   record type, busy cores incl. "other")    Postgres has flushed its counters; / payments
//   raw limit vs IPN ingest, 8 clients        3 alternating rounds of BENCH_SECONDS/3:         BENCH_INGEST_CLIENTS=8
//                                             after a warm-up of new IPNs, not counted         BENCH_INGEST_WARMUP_SECONDS=8
//                                             BEGIN; UPDATE jsonb; INSERT journal; COMMIT
//                                             (a median payment and journal row of this run)
//                                             vs signed `waiting` IPNs each creating a
//                                             payment (nothing enqueued; signed before the
//                                             window, as a sender has them); medians. Their
//                                             costs: one more window of new IPNs
//   duplicate IPN, same instance, 8 clients   the exact bytes of the last 10,000 IPNs this
//                                             service applied (the cost window's come last),
//                                             round robin: re-sends it remembers (it keeps
//                                             20,000); ratio = (service + Postgres CPU) per
//                                             duplicate / per new IPN; service rows written
//                                             must be 0
//   duplicate IPN, first applied by another   a second service process on the same database
//   instance, 8 clients                       and environment (the "peer"), started after the
//                                             ingest warm-up, applies 8,000 new IPNs and is
//                                             stopped before any window; then the exact bytes
//                                             of each, EXACTLY ONCE (a second send would be
//                                             remembered), to this service, until they run out
//                                             or BENCH_SECONDS; the same ratio and rows
//                                             written, reported (no target)
//   status reads, 32 clients                  GET /api/payment-status?order_id&token over the  BENCH_STATUS_CLIENTS=32
//                                             paid orders, round-robin; rows written must be 0
//
// BENCH_PG_SOCKET=1: the service (and the bench) reach Postgres over a Unix socket instead of TCP on loopback.
// Service settings can be tried without editing: BENCH_SERVICE_ENV='WORKER_BATCH_SIZE=50,DB_POOL_MAX=30';
// BENCH_SERVICE_LOG_LEVEL=info prints the service's start-up log. The service runs as shipped: every
// actor, reconciliation moved to once a year, payouts in the sandbox (a local EVM chain and a fake
// ChangeNow inside the service process, idle: its CPU counts as the service's); the channel pays its
// owner by `threshold` with a threshold no payment reaches, so the accumulate effect runs (a ledger
// credit per payment) and no payout batch does. Jobs per payment are printed, so what ran is visible.
//
// Only surfaces that older commits have too are used (the lead runs this bench/ against an earlier
// commit for a "before" column): src/main.ts and the environment variables of src/config.ts, the fakes
// in src/sandbox/, src/nowpayments/signature.ts and the HTTP API (POST /admin/channels, with the SQL
// earlier benches used as a fallback; POST /api/orders; the IPN webhook; GET /api/payment-status;
// /health/ready). The numbers are only as good as the machine is quiet: the "other" column is the CPU
// used meanwhile by processes that are neither Postgres, the service nor this bench.

const API_KEY = 'bench-api-key';
const IPN_SECRET = 'bench-ipn-secret';
const TOKEN = '777000:bench-token';
const STATUS_SECRET = 'bench-status-token-secret-0123456789abcdef';
const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';
const OPEN_CHANNEL = '-1001000000001';
const CLOSED_CHANNEL = '-1001000000002';
const PLAN = 'bench-30d';
const FIRST_BUYER = 500_000_000;
/** The gap between a payment's waiting, confirming and finished IPNs in the open loop. */
const STATUS_GAP_MS = 50;
/** IPNs signed before each ingest window, per second of it: above what the service takes here. */
const PRESIGNED_PER_SECOND = 1_200;
const DM_TIMEOUT_MS = 60_000;
/**
 * Duplicates re-sent to the instance that applied them: the last this many applied. The service keeps
 * the 20,000 bodies it settled last (src/intake/ipn.service.ts) and NowPayments re-sends within minutes;
 * at real rates 10,000 IPNs is hours of traffic. Re-sending every IPN of the run round robin (~28,000 on
 * a fast machine) would overrun that memory and measure only the path without it.
 */
const REMEMBERED_DUPLICATES = 10_000;
/** New IPNs the peer instance applies, each re-sent once to the main one: a window of a few seconds at 8 clients. */
const PEER_IPNS = 8_000;
/** At most this long for the peer, a fresh service (a few hundred IPNs/s until V8 has optimised), to take them. */
const PEER_INGEST_MAX_SECONDS = 120;

export interface E2eOptions {
  seconds: number;
  buyers: number;
  rates: number[];
  ingestClients: number;
  /** Seconds of new IPNs sent before the ingest rounds, not counted (the service warming up). */
  ingestWarmupSeconds: number;
  /** Payments made (closed loop, not counted) before any window: JIT, pools, workers. */
  warmupPayments: number;
  statusClients: number;
  parts: Set<'closed' | 'open' | 'intake'>;
}

export function e2eOptionsFromEnv(): E2eOptions {
  const list = (v: string | undefined, d: string) => (v ?? d).split(',').map((s) => s.trim()).filter(Boolean);
  const parts = new Set(list(process.env.BENCH_E2E_PARTS, 'closed,open,intake')) as E2eOptions['parts'];
  return {
    seconds: Number(process.env.BENCH_SECONDS ?? 3),
    buyers: Number(process.env.BENCH_BUYERS ?? 64),
    rates: list(process.env.BENCH_E2E_RATES, '20,50,100').map(Number),
    ingestClients: Number(process.env.BENCH_INGEST_CLIENTS ?? 8),
    ingestWarmupSeconds: Number(process.env.BENCH_INGEST_WARMUP_SECONDS ?? 8),
    warmupPayments: Number(process.env.BENCH_E2E_WARMUP ?? 500),
    statusClients: Number(process.env.BENCH_STATUS_CLIENTS ?? 32),
    parts,
  };
}

interface Prepared {
  buyer: number;
  orderId: string;
  token: string | null;
  paymentId: number;
  waiting: SignedIpn;
  confirming: SignedIpn;
  finished: SignedIpn;
}

export interface E2eRow {
  label: string;
  /** Payments whose IPNs were sent. */
  payments: number;
  /** Of those, whose DM reached the fake Bot API. */
  delivered: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** IPN answers other than 200, by kind ('' when none). */
  ipnFailures: string;
  /** Median time for the service to answer the finished IPN. */
  finishedAnswerMs: number;
  costs: Costs;
  stages: string | null;
  note: string;
}

export interface IntakeRow {
  label: string;
  /** Requests per second (for ingest: the median of the rounds alternating with the raw limit). */
  result: LoadResult;
  /** The costs of a window of `ops` requests. */
  costs: Costs;
  ops: number;
}

export interface E2eReport {
  rows: E2eRow[];
  intake: {
    raw: number;
    ingest: IntakeRow | null;
    /** Re-sends the service remembers (it applied them minutes earlier). */
    duplicate: IntakeRow | null;
    /** Re-sends of bodies another instance applied: the service finds the stored delivery. */
    duplicateFromPeer: IntakeRow | null;
    status: IntakeRow | null;
  } | null;
  idle: Costs;
  duplicateDms: number;
  /** Where each cost figure comes from, in words. */
  sources: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * A second instance of the service (the "peer") on the same database and environment applies `count`
 * new IPNs and is stopped: bodies stored by another instance, which the main one never saw. Resolves
 * with those answered "applied".
 */
async function applyOnPeer(env: Record<string, string>, count: number, clients: number): Promise<{ applied: SignedIpn[]; result: LoadResult; pid: number }> {
  const ipns = Array.from({ length: count }, () => newPaymentIpn(IPN_SECRET));
  // Its own free port, even when BENCH_SERVICE_ENV pins the main one's.
  const { PORT: _pinned, ...peerEnv } = env;
  const peer = await startServiceProcess(peerEnv);
  const http = httpClient(peer.url, clients);
  try {
    const applied: SignedIpn[] = [];
    const result = await benchIngestOnce(http, ipns, clients, PEER_INGEST_MAX_SECONDS, applied);
    return { applied, result, pid: peer.pid };
  } finally {
    http.close();
    await peer.stop();
  }
}

/**
 * Seeds the channel through the admin API (POST /admin/channels), as an operator would; where that API
 * answers otherwise (an older commit), with the SQL the earlier benches used. Returns how.
 */
async function seedChannel(http: HttpClient, db: pg.Client): Promise<string> {
  const body = {
    open_channel_id: OPEN_CHANNEL,
    closed_channel_id: CLOSED_CHANNEL,
    title: 'Bench channel',
    wallet_address: '0x0000000000000000000000000000000000000001',
    currency: 'eth',
    network: 'eth',
    strategy: 'threshold',
    threshold_usd: '1000000000',
    platform_fee_percent: '10',
    plans: [{ plan_id: PLAN, title: '30 days', price_usd: '10.00', duration_days: 30 }],
  };
  const res = await http.request('POST', '/admin/channels', { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` }, Buffer.from(JSON.stringify(body)));
  if (res.status === 201) return 'POST /admin/channels';
  try {
    await db.query(
      `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network, payout_strategy, threshold_usd)
       VALUES ($1, $2, 'Bench channel', '0x0000000000000000000000000000000000000001', 'eth', 'eth', 'threshold', 1000000000)`,
      [OPEN_CHANNEL, CLOSED_CHANNEL],
    );
    await db.query(`INSERT INTO plans (plan_id, open_channel_id, title, price_usd, duration_days) VALUES ($1, $2, '30 days', '10.00', 30)`, [PLAN, OPEN_CHANNEL]);
  } catch (error) {
    throw new Error(`POST /admin/channels answered ${res.status} (${res.body.slice(0, 200)}) and SQL seeding failed too: ${(error as Error).message}`, { cause: error });
  }
  return `SQL (POST /admin/channels answered ${res.status})`;
}

export async function benchE2e(db: BenchDatabase, log: (line: string) => void, options: E2eOptions = e2eOptionsFromEnv()): Promise<E2eReport> {
  const S = options.seconds;
  const { cluster } = db;
  const e2eDb = await createDatabase(cluster.adminUrl, `telepay_bench_e2e_${process.pid}`);
  const np = await startFakeNowPayments({ apiKey: API_KEY, ipnSecret: IPN_SECRET });
  const tg = await startFakeTelegram({ token: TOKEN });
  const cleanups: Array<() => Promise<unknown>> = [() => e2eDb.drop(), () => np.close(), () => tg.close()];
  try {
    // The main service's environment; the peer instance of the intake part runs with the same.
    const serviceEnv: Record<string, string> = {
      NODE_ENV: 'test',
      LOG_LEVEL: process.env.BENCH_SERVICE_LOG_LEVEL ?? 'silent',
      DATABASE_URL: e2eDb.url,
      NOWPAYMENTS_API_URL: np.url,
      NOWPAYMENTS_API_KEY: API_KEY,
      NOWPAYMENTS_IPN_SECRET: IPN_SECRET,
      TELEGRAM_BOT_TOKEN: TOKEN,
      TELEGRAM_API_ROOT: tg.apiRoot,
      STATUS_TOKEN_SECRET: STATUS_SECRET,
      ADMIN_TOKEN,
      // Scheduled sweeps off (once a year): they find nothing to do here, but the rows one writes when it
      // runs (a channel's credit fold, say) would land in whichever window it ran in, and the read windows
      // must show zero writes of their own.
      RECONCILE_EVERY: '0 0 1 1 *',
      PAYOUT_SWEEP_EVERY: '0 0 1 1 *',
      SUBSCRIPTION_SWEEP_EVERY: '0 0 1 1 *',
      STATUS_RATE_LIMIT: '1000000',
      ORDER_RATE_LIMIT: '1000000',
      ...parseEnvList(process.env.BENCH_SERVICE_ENV),
    };
    const service = await startServiceProcess(serviceEnv);
    cleanups.unshift(() => service.stop());
    const meter = await createMeter({
      adminUrl: cluster.adminUrl,
      dbUrl: e2eDb.url,
      dbName: e2eDb.name,
      postmasterPid: cluster.postmasterPid,
      servicePid: service.pid,
      statements: cluster.statements,
      walInspect: cluster.walInspect,
    });
    cleanups.unshift(() => meter.close());
    const diag = new pg.Client({ connectionString: e2eDb.url });
    await diag.connect();
    cleanups.unshift(() => diag.end());
    const http = httpClient(service.url, Math.max(64, options.statusClients, options.ingestClients));
    cleanups.unshift(async () => http.close());
    const seededBy = await seedChannel(http, diag);
    if (process.env.BENCH_SERVICE_LOG_LEVEL) log(service.output().trim().split('\n').map((l) => `  service| ${l}`).join('\n'));

    // DMs as the fake Bot API receives them: one buyer per payment, so a buyer's sendMessage ends that payment's path.
    const dmAt = new Map<number, number>();
    const dmCount = new Map<number, number>();
    const waiters = new Map<number, (t: number) => void>();
    const onCall = (call: TelegramCall) => {
      if (call.method !== 'sendMessage' || !call.acted) return;
      const buyer = Number(call.body.chat_id);
      const t = performance.now();
      dmCount.set(buyer, (dmCount.get(buyer) ?? 0) + 1);
      if (!dmAt.has(buyer)) dmAt.set(buyer, t);
      waiters.get(buyer)?.(t);
    };
    // A fake without onCall (older commits) still records every call in `calls`: hear the pushes.
    const stopListening =
      typeof tg.onCall === 'function'
        ? tg.onCall(onCall)
        : (() => {
            const calls = tg.calls as TelegramCall[] & { push: (...items: TelegramCall[]) => number };
            calls.push = (...items: TelegramCall[]) => {
              const n = Array.prototype.push.apply(calls, items);
              for (const item of items) onCall(item);
              return n;
            };
            return () => void delete (calls as { push?: unknown }).push;
          })();
    cleanups.unshift(async () => stopListening());
    const dmOf = (buyer: number, timeoutMs: number) =>
      new Promise<number | null>((resolve) => {
        const seen = dmAt.get(buyer);
        if (seen !== undefined) return resolve(seen);
        const timer = setTimeout(() => {
          waiters.delete(buyer);
          resolve(null);
        }, timeoutMs);
        waiters.set(buyer, (t) => {
          clearTimeout(timer);
          waiters.delete(buyer);
          resolve(t);
        });
      });

    // Orders (through the API, each with its invoice at the fake) and the three IPN bodies of each
    // payment, all before any clock starts.
    let buyers = 0;
    const prepare = async (count: number): Promise<Prepared[]> => {
      const out: Prepared[] = new Array(count);
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < count) {
            const n = next++;
            const buyer = FIRST_BUYER + buyers++;
            const body = Buffer.from(JSON.stringify({ telegram_user_id: String(buyer), open_channel_id: OPEN_CHANNEL, plan_id: PLAN }));
            let res = await http.request('POST', '/api/orders', { 'content-type': 'application/json' }, body);
            // A busy machine may get a 503 (under-pressure) or a 502 (the fake's invoice call timing out): try again.
            for (let attempt = 1; attempt < 5 && (res.status === 503 || res.status === 502); attempt++) {
              await sleep(200 * attempt);
              res = await http.request('POST', '/api/orders', { 'content-type': 'application/json' }, body);
            }
            if (res.status !== 201) throw new Error(`POST /api/orders answered ${res.status}: ${res.body.slice(0, 300)}`);
            const order = JSON.parse(res.body) as { order_id: string; invoice_url: string; status_url: string };
            const ref = new URL(order.invoice_url, 'http://x').searchParams.get('iid') ?? order.order_id;
            // The outcome arrives in the host wallet's asset (eth), so the owner's share is credited (a
            // share in another asset is refused: payout.failed, no ledger write).
            const waiting = np.pay(ref, { status: 'waiting', outcomeCurrency: 'eth' });
            const confirming = np.pay(ref, { status: 'confirming' });
            const finished = np.pay(ref, { status: 'finished', outcomeAmount: 0.0042 });
            // Signed now, as NowPayments signs on its side: the window measures the service, not the signing.
            const signed = (p: FakePayment): SignedIpn => {
              const { headers, body } = np.ipnRequest(p);
              return { headers, bytes: Buffer.from(body) };
            };
            out[n] = {
              buyer,
              orderId: order.order_id,
              token: new URL(order.status_url, 'http://x').searchParams.get('token'),
              paymentId: finished.payment_id,
              waiting: signed(waiting),
              confirming: signed(confirming),
              finished: signed(finished),
            };
          }
        }),
      );
      return out;
    };

    // IPN answers other than 200, by kind ("503", "timeout", ...): NowPayments would send those again later; the bench does not.
    const ipnFailures = new Map<string, number>();
    const failed = (kind: string) => ipnFailures.set(kind, (ipnFailures.get(kind) ?? 0) + 1);
    // Through the generator's own keep-alive client (bench/http-load.ts), not the fake's fetch: on two
    // cores the generator's CPU is taken from the service, and fetch costs several times more per request.
    const send = async (ipn: SignedIpn): Promise<void> => {
      try {
        const res = await http.request('POST', IPN_PATH, ipn.headers, ipn.bytes);
        if (res.status !== 200) failed(`HTTP ${res.status}`);
      } catch (error) {
        failed((error as Error).message.slice(0, 60));
      }
    };
    const failuresNow = () => new Map(ipnFailures);
    const failuresSince = (before: Map<string, number>) =>
      [...ipnFailures].flatMap(([kind, n]) => (n > (before.get(kind) ?? 0) ? [`${kind} x${n - (before.get(kind) ?? 0)}`] : [])).join(', ');

    /** One payment's IPNs; resolves with the DM latency (null: no DM within the timeout) and the finished IPN's answer time. */
    const pay = async (p: Prepared, at: number | null): Promise<{ latency: number | null; answerMs: number; startedAt: number }> => {
      if (at !== null) await sleep(at - performance.now());
      const startedAt = performance.now();
      await send(p.waiting);
      if (at !== null) await sleep(at + STATUS_GAP_MS - performance.now());
      await send(p.confirming);
      if (at !== null) await sleep(at + 2 * STATUS_GAP_MS - performance.now());
      const dm = dmOf(p.buyer, DM_TIMEOUT_MS);
      const t0 = performance.now();
      await send(p.finished);
      const answerMs = performance.now() - t0;
      const duplicate = send(p.finished); // the same bytes again
      const t1 = await dm;
      await duplicate;
      return { latency: t1 === null ? null : t1 - t0, answerMs, startedAt };
    };

    const stagesOf = async (payments: Prepared[], costs: Costs): Promise<string | null> => {
      try {
        const ids = payments.map((p) => String(p.paymentId));
        const { rows } = await diag.query<{ routed: number; invited: number }>(
          `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.at - f.at) * 1000) AS routed,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.at - r.at) * 1000) AS invited
             FROM payment_journal f
             JOIN payment_journal r ON r.payment_id = f.payment_id AND r.event_type = 'route.done'
             JOIN payment_journal i ON i.payment_id = f.payment_id AND i.event_type = 'invite.sent'
            WHERE f.event_type = 'np.finished' AND f.payment_id = ANY($1::text[])`,
          [ids],
        );
        const jobs = await diag.query<{ name: string; wait: number; run: number }>(
          `SELECT name, percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_on - created_on) * 1000) AS wait,
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_on - started_on) * 1000) AS run
             FROM pgboss.job WHERE name IN ('effect-route', 'effect-invite') AND state = 'completed'
              AND created_on >= $1::timestamptz AND created_on < $2::timestamptz GROUP BY name`,
          [costs.from, costs.to],
        );
        const job = (name: string) => {
          const j = jobs.rows.find((r) => r.name === name);
          return j ? `wait ${fmt(Number(j.wait))} ms, run ${fmt(Number(j.run))} ms` : 'none in this window';
        };
        return `finished IPN -> route.done ${fmt(Number(rows[0]?.routed))} ms, route.done -> invite.sent ${fmt(Number(rows[0]?.invited))} ms (journal, medians); route job ${job('effect-route')}; invite job ${job('effect-invite')}`;
      } catch (error) {
        return `stages n/a (${(error as Error).message.split('\n')[0]})`;
      }
    };

    const rowOf = (label: string, batch: Prepared[], outcomes: Array<{ latency: number | null; answerMs: number; startedAt: number }>, perSecond: number, costs: Costs, failuresBefore: Map<string, number>, note: string, stages: string | null): E2eRow => {
      const latencies = outcomes.flatMap((o) => (o.latency === null ? [] : [o.latency])).sort((a, b) => a - b);
      return {
        label,
        payments: batch.length,
        delivered: latencies.length,
        perSecond,
        p50Ms: percentile(latencies, 50),
        p99Ms: percentile(latencies, 99),
        maxMs: latencies.at(-1) ?? NaN,
        ipnFailures: failuresSince(failuresBefore),
        finishedAnswerMs: median(outcomes.map((o) => o.answerMs)),
        costs,
        stages,
        note,
      };
    };

    // Warm-up (not measured): JIT, connection pools, pg-boss workers; its pace sizes the closed loop's pool.
    const prepStarted = performance.now();
    const warm = await prepare(Math.max(options.warmupPayments, options.buyers));
    const warmStarted = performance.now();
    {
      let next = 0;
      await Promise.all(Array.from({ length: options.buyers }, async () => {
        while (next < warm.length) await pay(warm[next++]!, null);
      }));
    }
    const warmRate = warm.length / ((performance.now() - warmStarted) / 1000);
    // Everything measured is prepared before the clocks start. The closed loop gets a pool it should not
    // use up: four times the warm-up's pace (a cold service), at most BENCH_E2E_POOL_RATE per second.
    const poolRate = Number(process.env.BENCH_E2E_POOL_RATE ?? 250);
    const closedCount = options.parts.has('closed') ? Math.min(Math.ceil(S * poolRate), Math.max(options.buyers * 4, Math.ceil(4 * warmRate * S))) : 0;
    const openCounts = options.parts.has('open') ? options.rates.map((r) => Math.round(r * S)) : [];
    const prepared = await prepare(closedCount + openCounts.reduce((a, b) => a + b, 0));
    log(`  channel seeded by ${seededBy}; ${warm.length + prepared.length} orders made through POST /api/orders (${fmt((performance.now() - prepStarted) / 1000, 1)} s with the warm-up: ${fmt(warmRate, 1)} payments/s); service pid ${service.pid}, postmaster pid ${cluster.postmasterPid ?? 'n/a'}`);
    let taken = 0;
    const take = (n: number) => prepared.slice(taken, (taken += n));

    await meter.settle();
    const idle = (await meter.measure(() => sleep(2_000))).costs;
    // Every window below, without the idle service's background during the bench's quiet wait at its end.
    const measure = async <T>(run: () => Promise<T>): Promise<{ result: T; costs: Costs }> => {
      const { result, costs } = await meter.measure(run);
      return { result, costs: withoutSettle(costs, idle) };
    };

    const rows: E2eRow[] = [];
    const paidTargets: StatusTarget[] = warm.map((p) => ({ orderId: p.orderId, token: p.token }));

    if (options.parts.has('closed')) {
      const pool = take(closedCount);
      const failuresBefore = failuresNow();
      let next = 0;
      let exhaustedAt: number | null = null;
      const outcomes: Array<{ latency: number | null; answerMs: number; startedAt: number }> = [];
      const started = performance.now();
      const deadline = started + S * 1000;
      const { result: elapsed, costs } = await measure(async () => {
        await Promise.all(
          Array.from({ length: options.buyers }, async () => {
            while (performance.now() < deadline) {
              if (next >= pool.length) {
                exhaustedAt ??= performance.now() - started;
                return;
              }
              outcomes.push(await pay(pool[next++]!, null));
            }
          }),
        );
        return (performance.now() - started) / 1000;
      });
      const used = pool.slice(0, next);
      paidTargets.push(...used.map((p) => ({ orderId: p.orderId, token: p.token })));
      const delivered = outcomes.filter((o) => o.latency !== null).length;
      const note = exhaustedAt !== null ? `pool of ${pool.length} used up at ${fmt(exhaustedAt / 1000, 1)} s: raise BENCH_E2E_POOL_RATE` : '';
      rows.push(rowOf(`closed loop, ${options.buyers} buyers`, used, outcomes, delivered / elapsed, costs, failuresBefore, note, await stagesOf(used, costs)));
    }

    if (options.parts.has('open')) {
      for (const [k, rate] of options.rates.entries()) {
        const batch = take(openCounts[k]!);
        const failuresBefore = failuresNow();
        const { result, costs } = await measure(async () => {
          const begin = performance.now() + 20;
          const outcomes = await Promise.all(batch.map((p, n) => pay(p, begin + (n * 1000) / rate)));
          // The rate the payments actually started at (the load generator may fall behind its schedule).
          const starts = outcomes.map((o) => o.startedAt);
          const span = (Math.max(...starts) - Math.min(...starts)) / 1000 + 1 / rate;
          return { outcomes, offered: batch.length / span };
        });
        paidTargets.push(...batch.map((p) => ({ orderId: p.orderId, token: p.token })));
        rows.push(rowOf(`open loop ${rate}/s`, batch, result.outcomes, result.offered, costs, failuresBefore, '', await stagesOf(batch, costs)));
      }
    }

    let intake: E2eReport['intake'] = null;
    if (options.parts.has('intake')) {
      const clients = options.ingestClients;
      // The ratio: raw and ingest alternate over rounds and medians are compared, so a burst of background
      // load on this shared machine does not land on one side only.
      const raw = await prepareRawLimit(e2eDb.url, clients);
      const rawRuns: number[] = [];
      const ingestRuns: LoadResult[] = [];
      const applied: SignedIpn[] = [];
      const ROUNDS = 3;
      const round = async (seconds: number, sent: SignedIpn[]) => {
        rawRuns.push(await raw.run(clients, seconds));
        ingestRuns.push(await benchIngest(http, presignedIpns(IPN_SECRET, Math.ceil(PRESIGNED_PER_SECOND * seconds)), clients, seconds, sent));
      };
      // Warm-up, not counted: a fresh service takes a few thousand IPNs to reach its steady rate (measured
      // in 2 s windows on PG 15: 307, 321, 533, 717, 661, 860, 753/s; service CPU 3.1 -> ~1.0 ms per IPN as
      // V8 optimises the path), and the raw limit gets a round too.
      rawRuns.push(await raw.run(clients, Math.max(1, S / ROUNDS)));
      await benchIngest(http, presignedIpns(IPN_SECRET, PRESIGNED_PER_SECOND * options.ingestWarmupSeconds), clients, options.ingestWarmupSeconds, []);
      // Bodies another instance applied, for the duplicates this one does not remember; the peer is
      // gone before any window, so none of its CPU or polling lands in one.
      const peer = await applyOnPeer(serviceEnv, PEER_IPNS, clients);
      log(
        `  peer instance (pid ${peer.pid}, same database and environment): ${fmt(peer.applied.length)} of ${fmt(PEER_IPNS)} new IPNs applied in ${fmt(peer.result.seconds, 1)} s ` +
          `(${fmt(peer.result.perSecond)}/s; answers not "applied": ${peer.result.failures}${peer.result.firstFailure ? `, first: ${peer.result.firstFailure}` : ''}); stopped`,
      );
      rawRuns.length = ingestRuns.length = 0;
      for (let r = 0; r < ROUNDS; r++) await round(S / ROUNDS, applied);
      await raw.close();
      const ingestMedian = [...ingestRuns].sort((a, b) => a.perSecond - b.perSecond)[Math.floor(ROUNDS / 2)]!;
      const ingestFailures = ingestRuns.reduce((n, r) => n + r.failures, 0);
      // The costs: one more window of new IPNs alone, then the last applied bytes again (remembered), then
      // the peer's bytes once each (not remembered), then status reads.
      await meter.settle();
      const ipns = presignedIpns(IPN_SECRET, PRESIGNED_PER_SECOND * S);
      const fresh = await measure(() => benchIngest(http, ipns, clients, S, applied));
      const ingestRow: LoadResult = { ...fresh.result, perSecond: ingestMedian.perSecond, failures: fresh.result.failures + ingestFailures, firstFailure: fresh.result.firstFailure ?? ingestRuns.find((r) => r.firstFailure)?.firstFailure ?? null };
      // The ~50,000 rows the ingest windows inserted are vacuumed and analysed now, and the pages they
      // dirtied written out, outside any window: autovacuum and the spread checkpoint would otherwise do
      // it during the read windows below (a quarter of a core for tens of seconds) and put their CPU and
      // WAL there. That cost belongs to the writes; no row of this table includes it.
      await diag.query('VACUUM (ANALYZE) payments, payment_journal, ipn_deliveries');
      await diag.query('CHECKPOINT').catch((error: Error) => log(`  (no CHECKPOINT before the read windows: ${error.message})`));
      await meter.settle();
      const duplicate = await measure(() => benchDuplicates(http, applied.slice(-REMEMBERED_DUPLICATES), clients, S));
      const fromPeer = peer.applied.length ? await measure(() => benchDuplicatesOnce(http, peer.applied, clients, S)) : null;
      const status = await measure(() => benchStatusReads(http, paidTargets, options.statusClients, S));
      intake = {
        raw: median(rawRuns),
        ingest: { label: `new-payment IPN (waiting), ${clients} clients`, result: ingestRow, costs: fresh.costs, ops: fresh.result.ops },
        duplicate: { label: `duplicate IPN, same instance (last ${fmt(Math.min(REMEMBERED_DUPLICATES, applied.length))})`, result: duplicate.result, costs: duplicate.costs, ops: duplicate.result.ops },
        duplicateFromPeer: fromPeer && { label: 'duplicate IPN, first applied by another instance', result: fromPeer.result, costs: fromPeer.costs, ops: fromPeer.result.ops },
        status: { label: `status reads, ${options.statusClients} clients`, result: status.result, costs: status.costs, ops: status.result.ops },
      };
    }

    const duplicateDms = [...dmCount.values()].filter((n) => n > 1).length;
    const sources = [
      `xacts = pg_stat_database xact_commit + xact_rollback of database ${e2eDb.name}`,
      `stmts = ${cluster.statements ? 'pg_stat_statements calls (top-level statements, BEGIN/COMMIT included; none inside functions or triggers)' : 'not counted (pg_stat_statements is not preloaded on this server)'}`,
      `PG CPU = ${cluster.postmasterPid ? `/proc utime+stime of postmaster ${cluster.postmasterPid} and its children (every backend and background process; exited ones through cutime+cstime)` : 'not measured (the server is not on this machine)'}`,
      `svc CPU = /proc of the service process ${service.pid}`,
      `gen = this process (load generator and both fakes); other = the machine's busy CPU (/proc/stat) minus the three`,
      `WAL = pg_current_wal_insert_lsn() difference (whole cluster)${cluster.walInspect ? ', by record type from pg_walinspect' : ''}`,
      `each window runs until every job it caused is done and Postgres has flushed its counters (BENCH_STATS_FLUSH_MS); the idle service's background (the idle row) during that quiet wait is taken out, during the load it stays in`,
    ].join('; ');
    if (process.env.BENCH_TOP_STATEMENTS && cluster.statements) await logTopStatements(cluster.adminUrl, e2eDb.name, log);
    return { rows, intake, idle, duplicateDms, sources };
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => {});
  }
}

/**
 * BENCH_TOP_STATEMENTS=1: where the database time of the whole section went, statement by statement;
 * BENCH_TOP_STATEMENTS=calls: the 60 most frequent statements instead (what a payment sends, by count).
 */
async function logTopStatements(adminUrl: string, dbName: string, log: (line: string) => void): Promise<void> {
  const byCalls = process.env.BENCH_TOP_STATEMENTS === 'calls';
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ calls: string; total: number; plan: number; query: string }>(
      `SELECT calls::text, round(total_exec_time::numeric, 1)::float AS total, round(total_plan_time::numeric, 1)::float AS plan,
              regexp_replace(left(query, 110), '\\s+', ' ', 'g') AS query
         FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)
        ORDER BY ${byCalls ? 'pg_stat_statements.calls DESC LIMIT 60' : 'total_exec_time + total_plan_time DESC LIMIT 25'}`,
      [dbName],
    );
    log(`  top statements (whole section${byCalls ? ', most frequent first' : ''}): calls, exec ms, plan ms, text`);
    for (const r of rows) log(`  ${r.calls.padStart(7)} ${String(r.total).padStart(9)} ${String(r.plan).padStart(7)}  ${r.query}`);
  } finally {
    await client.end();
  }
}
