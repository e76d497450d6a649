import pg from 'pg';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startFakeNowPayments, type FakePayment } from '../src/sandbox/nowpayments.fake.js';
import { startFakeTelegram, type TelegramCall } from '../src/sandbox/telegram.fake.js';
import { startService } from '../src/service.js';
import { createScratchDatabase } from '../src/persistence/scratch-postgres.js';
import { percentile } from './support.js';

// End-to-end invite latency: from a signed "finished" IPN leaving NowPayments (fake) to the invite
// message reaching the Bot API (fake), through the whole service as `npm start` runs it (webhook ->
// applyEvent -> route job -> invite job -> createChatInviteLink -> sendMessage). Payments arrive at a
// steady rate for a bounded time; everything is on loopback. Each payment has its own buyer, so the
// sendMessage to that buyer marks the end of that payment's path.

export interface InviteLatencyOptions {
  /** Payments per second (default 100). */
  rate?: number;
  /** How long payments keep arriving, in seconds (default 10; BENCH_INVITE_SECONDS). */
  seconds?: number;
  /** How long to wait for stragglers after the last IPN, in ms (default 30 s). */
  drainMs?: number;
  /** Configuration overrides (worker batch size, pool size, ...), to compare settings. */
  env?: Record<string, string>;
}

export interface InviteLatencyResult {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Invite messages that reached the fake Bot API. */
  sent: number;
  /** Payments sent (IPNs posted). */
  payments: number;
  /** Achieved IPN rate, payments per second. */
  achievedRate: number;
  /** Median time between journal entries (database clock): where the latency goes. */
  stages: {
    ipnToRouted: number;
    routedToInvited: number;
    /** Median wait in the queue and run time (until pg-boss recorded completion) of the two jobs. */
    routeJob: { waitMs: number; runMs: number };
    inviteJob: { waitMs: number; runMs: number };
  };
  /** CPU time of this process (service, fakes and driver share it) per wall-clock second: near 1 means Node is saturated. */
  processCpu: number;
  /** Median round trip of SELECT 1 on a side connection during the run (Postgres and event-loop responsiveness). */
  selectOneMs: number;
}

async function stageMedians(pool: pg.Pool): Promise<InviteLatencyResult['stages']> {
  const { rows } = await pool.query<{ routed: number; invited: number }>(`
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.at - f.at) * 1000) AS routed,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.at - r.at) * 1000) AS invited
      FROM payment_journal f
      JOIN payment_journal r ON r.payment_id = f.payment_id AND r.event_type = 'route.done'
      JOIN payment_journal i ON i.payment_id = f.payment_id AND i.event_type = 'invite.sent'
     WHERE f.event_type = 'np.finished'`);
  const jobs = await pool.query<{ name: string; wait: number; run: number }>(`
    SELECT name, percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_on - created_on) * 1000) AS wait,
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_on - started_on) * 1000) AS run
      FROM pgboss.job WHERE name IN ('effect-route', 'effect-invite') AND state = 'completed' GROUP BY name`);
  const of = (name: string) => jobs.rows.find((r) => r.name === name);
  return {
    ipnToRouted: Number(rows[0]?.routed),
    routedToInvited: Number(rows[0]?.invited),
    routeJob: { waitMs: Number(of('effect-route')?.wait), runMs: Number(of('effect-route')?.run) },
    inviteJob: { waitMs: Number(of('effect-invite')?.wait), runMs: Number(of('effect-invite')?.run) },
  };
}

const API_KEY = 'bench-api-key';
const IPN_SECRET = 'bench-ipn-secret';
const TOKEN = '777000:bench-token';
const OPEN_CHANNEL = '-1001000000001';
const CLOSED_CHANNEL = '-1001000000002';
const FIRST_BUYER = 500_000_000;

export async function benchInviteLatency(url: string, log: (line: string) => void, options: InviteLatencyOptions = {}): Promise<InviteLatencyResult> {
  const rate = options.rate ?? 100;
  const seconds = options.seconds ?? Number(process.env.BENCH_INVITE_SECONDS ?? 10);
  const count = Math.round(rate * seconds);
  // A sibling database on the same server, so jobs left by other benchmarks do not run during this one.
  const db = await createScratchDatabase(url, `telepay_bench_invite_${process.pid}`, { replace: true });
  const np = await startFakeNowPayments({ apiKey: API_KEY, ipnSecret: IPN_SECRET });
  const tg = await startFakeTelegram({ token: TOKEN });
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    LOG_LEVEL: 'silent',
    DATABASE_URL: db.url,
    NOWPAYMENTS_API_URL: np.url,
    NOWPAYMENTS_API_KEY: API_KEY,
    NOWPAYMENTS_IPN_SECRET: IPN_SECRET,
    STATUS_TOKEN_SECRET: 'bench-status-token-secret-0123456789abcdef',
    RECONCILE_EVERY: '0 0 1 1 *',
    TELEGRAM_BOT_TOKEN: TOKEN,
    TELEGRAM_API_ROOT: tg.apiRoot,
    ...options.env,
  });
  // The access path only: payouts are measured by bench/payouts.bench.ts.
  const service = await startService(config, createLogger('silent'), { effects: ['route', 'invite'] });
  try {
    const { pool } = service.db;
    await pool.query(
      `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network, payout_strategy, threshold_usd)
       VALUES ($1, $2, 'Bench channel', '0x0000000000000000000000000000000000000001', 'usdt', 'trx', 'threshold', 1000000)`,
      [OPEN_CHANNEL, CLOSED_CHANNEL],
    );
    await pool.query(`INSERT INTO plans (plan_id, open_channel_id, title, price_usd, duration_days) VALUES ('bench-30d', $1, '30 days', '10.00', 30)`, [OPEN_CHANNEL]);

    // Orders (and their invoices at the fake) are made through the real order service before the clock starts.
    const orderService = service.orders;
    const payments: FakePayment[] = new Array(count);
    for (let from = 0; from < count; from += 20) {
      await Promise.all(
        Array.from({ length: Math.min(20, count - from) }, async (_, k) => {
          const n = from + k;
          const order = await orderService.createOrder({ buyerTelegramId: String(FIRST_BUYER + n), openChannelId: OPEN_CHANNEL, planId: 'bench-30d', source: 'api' });
          payments[n] = np.pay(order.orderId, { status: 'finished' });
        }),
      );
    }

    const startedAt = new Array<number>(count);
    const latencies: number[] = [];
    let resolveAll: () => void = () => {};
    const allSent = new Promise<void>((resolve) => {
      resolveAll = resolve;
    });
    const stop = tg.onCall((call: TelegramCall) => {
      if (call.method !== 'sendMessage' || !call.acted) return;
      const n = Number(call.body.chat_id) - FIRST_BUYER;
      const t0 = startedAt[n];
      if (t0 === undefined) return;
      latencies.push(performance.now() - t0);
      if (latencies.length === count) resolveAll();
    });

    // A side connection timing a trivial query through the run: how responsive Postgres itself is under this load.
    const probe = new pg.Client({ connectionString: db.url });
    await probe.connect();
    const probeMs: number[] = [];
    let probing = true;
    const probeLoop = (async () => {
      while (probing) {
        const t0 = performance.now();
        await probe.query('SELECT 1');
        probeMs.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    log(`  ${count} payments at ${rate}/s for ${seconds}s ...`);
    const begin = performance.now();
    const cpuBefore = process.cpuUsage();
    const posts: Promise<unknown>[] = [];
    for (let n = 0; n < count; n++) {
      // A steady schedule: payment n leaves at begin + n / rate, whatever the previous ones cost.
      const due = begin + (n * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      startedAt[n] = performance.now();
      posts.push(np.sendIpn(payments[n]!));
    }
    const achievedRate = count / ((performance.now() - begin) / 1000);
    await Promise.all(posts);
    const drain = new Promise<void>((resolve) => setTimeout(resolve, options.drainMs ?? 30_000).unref());
    await Promise.race([allSent, drain]);
    stop();
    probing = false;
    await probeLoop;
    await probe.end();
    const cpu = process.cpuUsage(cpuBefore);
    const processCpu = (cpu.user + cpu.system) / 1000 / (performance.now() - begin);
    const stages = await stageMedians(pool);

    const sorted = [...latencies].sort((a, b) => a - b);
    return {
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted.at(-1) ?? NaN,
      sent: latencies.length,
      payments: count,
      achievedRate,
      stages,
      processCpu,
      selectOneMs: percentile([...probeMs].sort((a, b) => a - b), 50),
    };
  } finally {
    await service.close();
    await tg.close();
    await np.close();
    await db.drop();
  }
}
