import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { IPN_PATH } from '../src/http/routes/ipn.route.js';
import { startFakeNowPayments, type FakeNowPayments, type FakePayment } from '../src/sandbox/nowpayments.fake.js';
import { startSandboxPayouts, type SandboxPayouts } from '../src/sandbox/sandbox-payouts.js';
import { startFakeTelegram, type FakeTelegram, type TelegramCall } from '../src/sandbox/telegram.fake.js';
import { freePort } from '../src/persistence/scratch-postgres.js';
import { cleanEnv, ServiceProcess } from './chaos.js';
import { openRunDatabase } from './run-database.js';

// Scale-out run (docs/deploy.md): several instances of the service (`src/main.ts`, each a child process
// with its own ROLE) on ONE empty Postgres, started at the same moment (so they race the migrations,
// pg-boss's schema and the queue set-up), against one fake NowPayments, one fake Telegram Bot API and one
// local EVM chain + fake ChangeNow, all living here in the parent and shared by every instance. Buyers
// order through the web instances; then a replay storm: every IPN (waiting, confirming, finished) is sent
// several times to EVERY web instance's webhook, shuffled (so out of order) and concurrently. Meanwhile
// worker instances are SIGKILLed while a DM they asked for is in flight (its answer never reaches them)
// and a replacement is started. At the end the guarantees are checked:
//   - one payment per order, every one granted (access invited) with its owner share credited once;
//   - exactly one invite link per order at Telegram and exactly one DM per buyer carrying it; the only
//     exceptions are those the at-most-once rule allows for an order a killed worker was handling (a
//     link whose answer died with it is an orphan: never sent, expires within 10 minutes; a DM whose
//     answer died with it is "delivery unconfirmed": 0 or 1 DM, never 2);
//   - every journal is seq 1..version without gaps, and no event is applied twice;
//   - no job left behind; web instances made no Bot API call (they work no queue); every instance
//     shuts down cleanly on SIGTERM.
//
//   npm run scaleout                                     2 web + 2 worker + 1 all, 200 orders, 3 kills
//   npm run scaleout -- --orders 400 --web 3 --workers 3 --all 0 --kills 5 --repeats 3 --seed 7 --keep-logs
//
// Database: DATABASE_URL's server when set (an empty scratch database is created and dropped), else a
// private embedded cluster in a temporary directory. test/scale-out.test.ts runs a short version
// (web + all + worker, 20 orders, one kill) in `npm test`.

const API_KEY = 'scaleout-nowpayments-api-key';
const IPN_SECRET = 'scaleout-nowpayments-ipn-secret';
const BOT_TOKEN = '777002:scaleout-bot-token';
const STATUS_SECRET = 'scaleout-status-token-secret-0123456789abcdef';
const ADMIN_TOKEN = 'scaleout-admin-token-0123456789';

export type Role = 'all' | 'web' | 'worker';

export interface ScaleOutOptions {
  /** A database the instances may own; normally empty, so their concurrent start migrates it. */
  databaseUrl: string;
  /** One instance per entry, all started at once. At least one that serves HTTP and one that works. */
  roles: Role[];
  orders: number;
  /** Copies of every IPN sent to each web instance (the storm is orders x 3 statuses x web instances x repeats). */
  repeats: number;
  /** SIGKILLs of worker instances (ROLE worker first, then all), each followed by a replacement. */
  kills: number;
  seed: number;
  /** Concurrent IPN deliveries. */
  concurrency?: number;
  /** Give up waiting for every payment to settle after this long (ms). */
  settleTimeoutMs?: number;
  /** DB_POOL_MAX of each instance (pg-boss has its own JOB_POOL_MAX, 4 by default). */
  poolMax?: number;
  say?: (line: string) => void;
}

export interface ScaleOutReport {
  seed: number;
  roles: Role[];
  orders: number;
  ipnsSent: number;
  kills: number;
  /** Bot API requests a killed instance had sent and never got the answer to (the answer died with it). */
  inFlightAtKill: string[];
  /** Effect jobs active (held by some worker) just after each kill. */
  activeJobsAtKill: number[];
  /** Bot API requests a live instance gave up waiting for (TELEGRAM_REQUEST_TIMEOUT; only under heavy load). */
  abandonedCalls: number;
  /** Where each orphan link came from. */
  orphanOrigins: string[];
  /** Bot API calls per instance life (`worker-2#1` = the second life of slot worker-2). */
  telegramCallsBy: Record<string, number>;
  outcomes: { invited: number; unconfirmed: number; other: number };
  dms: { total: number; maxPerBuyer: number };
  links: { total: number; orphans: number };
  migrationsApplied: number;
  /** Seconds: all instances up (they migrate an empty database together), storm sent, everything settled. */
  timings: { startSeconds: number; stormSeconds: number; settleSeconds: number; totalSeconds: number };
  logDir: string;
  violations: string[];
}

/** Instances running now: an interrupted run (Ctrl-C, SIGTERM) kills them before it leaves. */
const running = new Set<ServiceProcess>();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** mulberry32: a run is repeatable from its seed (timing still varies: the instances run in real time). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes; never a fixed sleep. */
async function until<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

interface TapCall {
  /** Slot and life that made the call, e.g. `worker-2#1`. */
  by: string;
  method: string;
  body: Record<string, unknown>;
  /** The answer reached the instance. */
  answered: boolean;
  /** The instance stopped waiting before the answer came (its request timed out, or it died). */
  abandoned: boolean;
  /** The link a createChatInviteLink made at Telegram (whether or not the instance heard of it). */
  link?: string;
}

/**
 * A pass-through in front of the shared fake Bot API, one per instance slot (its TELEGRAM_API_ROOT), so
 * every call is attributed to the instance that made it. `killOnNext` holds back the answer to the next
 * call of a method and SIGKILLs the instance instead: Telegram acted, the instance never learned it.
 */
class TelegramTap {
  readonly calls: TapCall[] = [];
  life = 1;
  private server: Server | null = null;
  private trap: { method: string; onHeld: (call: TapCall) => void } | null = null;
  url = '';

  constructor(
    readonly slot: string,
    private readonly upstream: string,
  ) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(502).end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  killOnNext(method: string, onHeld: (call: TapCall) => void): void {
    this.trap = { method, onHeld };
  }

  disarm(): void {
    this.trap = null;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const method = (req.url ?? '').split('?')[0]!.split('/').pop() ?? '';
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    } catch {
      // not JSON (grammY sends JSON unless it uploads a file): attributed by method only
    }
    const call: TapCall = { by: `${this.slot}#${this.life}`, method, body, answered: false, abandoned: false };
    this.calls.push(call);
    res.on('close', () => {
      if (!res.writableFinished) call.abandoned = true;
    });
    const headers: Record<string, string> = {};
    if (req.headers['content-type']) headers['content-type'] = req.headers['content-type'];
    const withBody = req.method !== 'GET' && req.method !== 'HEAD' && raw.length > 0;
    const upstream = await fetch(`${this.upstream}${req.url ?? ''}`, { method: req.method ?? 'POST', headers, ...(withBody && { body: raw }) });
    const text = await upstream.text();
    if (method === 'createChatInviteLink') {
      try {
        call.link = (JSON.parse(text) as { result?: { invite_link?: string } }).result?.invite_link;
      } catch {
        // not an answer we can read: no link made
      }
    }
    if (this.trap && this.trap.method === method && `${this.slot}#${this.life}` === call.by) {
      // Telegram has acted; the instance dies before it hears so. The answer is never written: the
      // connection closes when the process is gone.
      const { onHeld } = this.trap;
      this.trap = null;
      onHeld(call);
      return;
    }
    if (res.destroyed) return; // the instance gave up waiting (TELEGRAM_REQUEST_TIMEOUT): Telegram acted, unheard
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
    res.end(text);
    call.answered = true;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

interface Slot {
  name: string;
  role: Role;
  port: number;
  base: string;
  tap: TelegramTap;
  proc: ServiceProcess;
}

const inviteButton = (call: TelegramCall): string | undefined => {
  const markup = (typeof call.body.reply_markup === 'string' ? JSON.parse(call.body.reply_markup) : call.body.reply_markup) as
    | { inline_keyboard?: { url?: string }[][] }
    | undefined;
  return markup?.inline_keyboard?.flat().find((b) => b.url?.startsWith('https://t.me/+'))?.url;
};

export async function runScaleOut(options: ScaleOutOptions): Promise<ScaleOutReport> {
  const started = Date.now();
  const say = options.say ?? (() => {});
  const random = prng(options.seed);
  const violations: string[] = [];
  const servesHttp = (role: Role) => role !== 'worker';
  const works = (role: Role) => role !== 'web';
  if (!options.roles.some(servesHttp) || !options.roles.some(works)) throw new Error('roles: at least one instance must serve HTTP and one must work the queues');
  const logDir = await mkdtemp(join(tmpdir(), `telepay-scaleout-${options.seed}-`));

  const report: ScaleOutReport = {
    seed: options.seed,
    roles: options.roles,
    orders: options.orders,
    ipnsSent: 0,
    kills: 0,
    inFlightAtKill: [],
    activeJobsAtKill: [],
    abandonedCalls: 0,
    orphanOrigins: [],
    telegramCallsBy: {},
    outcomes: { invited: 0, unconfirmed: 0, other: 0 },
    dms: { total: 0, maxPerBuyer: 0 },
    links: { total: 0, orphans: 0 },
    migrationsApplied: 0,
    timings: { startSeconds: 0, stormSeconds: 0, settleSeconds: 0, totalSeconds: 0 },
    logDir,
    violations,
  };

  // The observer's own small pool (not application_name 'telepay').
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 3, application_name: 'telepay-scaleout' });
  pool.on('error', () => {});
  const np: FakeNowPayments = await startFakeNowPayments({ apiKey: API_KEY, ipnSecret: IPN_SECRET });
  const tg: FakeTelegram = await startFakeTelegram({ token: BOT_TOKEN });
  // One chain and one ChangeNow for every instance: split roles refuse the in-process sandbox fakes.
  const payouts: SandboxPayouts = await startSandboxPayouts();
  const slots: Slot[] = [];
  const counts: Record<Role, number> = { all: 0, web: 0, worker: 0 };
  for (const role of options.roles) {
    counts[role] += 1;
    const name = `${role}-${counts[role]}`;
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const tap = new TelegramTap(name, tg.apiRoot);
    await tap.start();
    const env = cleanEnv({
      ROLE: role,
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: String(port),
      PUBLIC_BASE_URL: base,
      LOG_LEVEL: 'info',
      DATABASE_URL: options.databaseUrl,
      DB_POOL_MAX: String(options.poolMax ?? 5),
      ADMIN_TOKEN,
      STATUS_TOKEN_SECRET: STATUS_SECRET,
      NOWPAYMENTS_API_URL: np.url,
      NOWPAYMENTS_API_KEY: API_KEY,
      NOWPAYMENTS_IPN_SECRET: IPN_SECRET,
      ORDER_RATE_LIMIT: '1000000',
      STATUS_RATE_LIMIT: '1000000',
      RECONCILE_EVERY: '* * * * *',
      RECONCILE_AFTER: '1m',
      TELEGRAM_BOT_TOKEN: BOT_TOKEN,
      TELEGRAM_API_ROOT: tap.url,
      // The production default: this run is about instances and crashes, not slow answers (a request that
      // does time out under load is allowed the same at-most-once exceptions as a crash, see below).
      TELEGRAM_REQUEST_TIMEOUT: '10s',
      CHANGENOW_API_URL: payouts.changeNow.baseUrl,
      CHANGENOW_API_KEY: payouts.changeNow.apiKey,
      ETH_RPC_URL: payouts.chain.rpcUrl,
      HOST_WALLET_PRIVATE_KEY: payouts.hostPrivateKey,
      JOB_RETRY_LIMIT: '10',
      JOB_RETRY_DELAY: '1s',
      JOB_RETRY_DELAY_MAX: '3s',
      JOB_HEARTBEAT: '10s',
      JOB_SUPERVISE_EVERY: '1s',
      SHUTDOWN_GRACE: '10s',
    });
    const proc = new ServiceProcess(env, join(logDir, `${name}.log`));
    running.add(proc);
    slots.push({ name, role, port, base, tap, proc });
  }
  const webSlots = slots.filter((s) => servesHttp(s.role));
  // Kill ROLE=worker instances first (the case this run is about), then ROLE=all ones, in turn.
  const victims = [...slots.filter((s) => s.role === 'worker'), ...slots.filter((s) => s.role === 'all')];
  const killedLives = new Set<string>();
  const restarts: Promise<void>[] = [];

  try {
    // --- all instances at once, on the (empty) database: they race migrations, pg-boss and queues.
    await Promise.all(slots.map((s) => s.proc.start(120_000)));
    report.timings.startSeconds = Math.round((Date.now() - started) / 100) / 10;
    say(`${slots.length} instances up in ${report.timings.startSeconds} s (${slots.map((s) => `${s.name} ${s.base}`).join(', ')}); logs in ${logDir}`);
    const { rows: migrations } = await pool.query<{ n: string; distinct: string }>('SELECT count(*) AS n, count(DISTINCT version) AS distinct FROM schema_migrations');
    report.migrationsApplied = Number(migrations[0]!.n);
    if (migrations[0]!.n !== migrations[0]!.distinct) violations.push(`schema_migrations holds a version twice (${migrations[0]!.n} rows, ${migrations[0]!.distinct} versions)`);

    // Each role serves what it should: a worker only health and metrics, a web instance everything.
    for (const s of slots) {
      const ready = await fetch(`${s.base}/health/ready`);
      if (ready.status !== 200) violations.push(`${s.name}: /health/ready answered ${ready.status}`);
      const ipn = await fetch(`${s.base}${IPN_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      const metrics = await fetch(`${s.base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      if (metrics.status !== 200) violations.push(`${s.name}: /metrics answered ${metrics.status}`);
      if (s.role === 'worker' && ipn.status !== 404) violations.push(`worker ${s.name} serves the IPN webhook (HTTP ${ipn.status}); it should serve only health and metrics`);
      if (s.role !== 'worker' && ipn.status === 404) violations.push(`${s.name} (ROLE=${s.role}) does not serve the IPN webhook`);
    }

    // --- one channel per order (so each order's links are told apart at Telegram by chat), a threshold no
    // order reaches (payouts have their own crash tests; this run is about access and the journal).
    const tag = (options.seed % 1000) * 1000 + (Date.now() % 1000);
    const orders = Array.from({ length: options.orders }, (_, i) => ({
      open: String(-1_008_000_000_000 - tag * 10_000 - i),
      closed: String(-1_007_000_000_000 - tag * 10_000 - i),
      plan: `scale-plan-${i}`,
      buyer: String(700_000_000 + i),
      orderId: '',
    }));
    for (const o of orders) {
      await pool.query(
        `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network, payout_strategy, threshold_usd)
         VALUES ($1, $2, $3, '0x0000000000000000000000000000000000000001', 'usdt', 'trx', 'threshold', 1000000)`,
        [o.open, o.closed, `Scale ${o.open}`],
      );
      await pool.query(`INSERT INTO plans (plan_id, open_channel_id, title, price_usd, duration_days) VALUES ($1, $2, '30 days', '10.00', 30)`, [o.plan, o.open]);
    }

    // --- buyers order through the web instances, in turn.
    let nextOrder = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (nextOrder < orders.length) {
          const i = nextOrder++;
          const o = orders[i]!;
          const res = await fetch(`${webSlots[i % webSlots.length]!.base}/api/orders`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ telegram_user_id: o.buyer, open_channel_id: o.open, plan_id: o.plan }),
          });
          if (res.status !== 201) throw new Error(`order ${i}: HTTP ${res.status} ${await res.text()}`);
          o.orderId = ((await res.json()) as { order_id: string }).order_id;
        }
      }),
    );
    const orderIds = orders.map((o) => o.orderId);
    const byClosed = new Map(orders.map((o) => [o.closed, o]));
    const byBuyer = new Map(orders.map((o) => [o.buyer, o]));
    say(`${orders.length} orders created`);

    // --- the storm: each order's three statuses (paid in ETH, as the sandbox buyer pays), every one
    // sent `repeats` times to every web instance, the whole list shuffled: out of order and concurrent.
    const payAmount = '0.00333334';
    const outcomeAmount = '0.0033166733';
    const deliveries: Array<{ snapshot: FakePayment; url: string }> = [];
    for (const o of orders) {
      for (const status of ['waiting', 'confirming', 'finished'] as const) {
        const arrived = status !== 'waiting';
        const snapshot = np.pay(o.orderId, {
          status,
          payCurrency: 'eth',
          payAmount,
          outcomeCurrency: 'eth',
          actuallyPaid: arrived ? payAmount : '0',
          outcomeAmount: arrived ? outcomeAmount : '0',
        });
        for (const web of webSlots) for (let r = 0; r < options.repeats; r++) deliveries.push({ snapshot, url: `${web.base}${IPN_PATH}` });
      }
    }
    for (let i = deliveries.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [deliveries[i], deliveries[j]] = [deliveries[j]!, deliveries[i]!];
    }
    const deliver = async (d: { snapshot: FakePayment; url: string }): Promise<void> => {
      for (let attempt = 0; attempt < 600; attempt++) {
        try {
          const { status } = await np.sendIpn(d.snapshot, { callbackUrl: d.url });
          report.ipnsSent += 1;
          if (status === 200) return;
        } catch {
          // refused or reset: NowPayments tries again
        }
        await sleep(100 + random() * 200);
      }
      throw new Error(`IPN for payment ${d.snapshot.payment_id} to ${d.url} never answered 200`);
    };

    // --- the kills: once a share of the DMs is out, the next DM a victim asks for is delivered by
    // Telegram but its answer never reaches the victim: SIGKILL (whatever else it held dies with it), and
    // a replacement starts. Should the victim ask for no DM soon enough, it is killed where it stands.
    const dmCount = () => tg.callsOf('sendMessage').filter((c) => c.acted && inviteButton(c)).length;
    const observations: Promise<unknown>[] = [];
    const starting = new Map<Slot, Promise<void>>();
    const killNow = (slot: Slot, held: TapCall | null) => {
      const life = `${slot.name}#${slot.tap.life}`;
      slot.proc.kill9();
      killedLives.add(life);
      slot.tap.life += 1;
      report.kills += 1;
      const inFlight = slot.tap.calls.filter((c) => c.by === life && !c.answered);
      report.inFlightAtKill.push(...inFlight.map((c) => `${life} ${c.method}${c === held ? ' (held)' : ''}`));
      say(`kill ${report.kills}: ${life} at ${dmCount()} DMs, ${inFlight.length} Bot API request(s) in flight`);
      observations.push(
        pool
          .query<{ n: string }>(`SELECT count(*) AS n FROM pgboss.job WHERE name LIKE 'effect-%' AND state = 'active'`)
          .then(({ rows }) => report.activeJobsAtKill.push(Number(rows[0]!.n)))
          .catch(() => {}),
      );
      const replacement = slot.proc.start(120_000);
      replacement.catch(() => {}); // awaited (and its failure reported) below
      restarts.push(replacement);
      starting.set(slot, replacement);
    };
    let settledAll = false;
    const kills = (async () => {
      for (let k = 1; k <= options.kills; k++) {
        const slot = victims[(k - 1) % victims.length]!;
        const threshold = Math.max(1, Math.floor((options.orders * k) / (options.kills + 2)));
        const fallbackAt = Math.max(threshold + 1, Math.floor((options.orders * (k + 1)) / (options.kills + 2)));
        await until(() => (dmCount() >= threshold || settledAll ? true : undefined), 120_000, `${threshold} DMs before kill ${k}`);
        await starting.get(slot); // a victim killed before is killed again once it is up
        let killed = false;
        slot.tap.killOnNext('sendMessage', (call) => {
          killNow(slot, call);
          killed = true;
        });
        await until(() => (killed || dmCount() >= fallbackAt || settledAll ? true : undefined), 60_000, `kill ${k}`, 20);
        if (!killed) {
          // The victim asked for no DM in time: killed where it stands.
          slot.tap.disarm();
          killNow(slot, null);
        }
      }
    })().catch((error: unknown) => {
      violations.push(`the kills did not run as planned: ${error instanceof Error ? error.message : String(error)}`);
    });

    const stormStart = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: options.concurrency ?? 16 }, async () => {
        while (next < deliveries.length) await deliver(deliveries[next++]!);
      }),
    );
    report.timings.stormSeconds = Math.round((Date.now() - stormStart) / 100) / 10;
    say(`storm: ${deliveries.length} IPNs delivered (${report.ipnsSent} requests) in ${report.timings.stormSeconds} s`);

    // --- settle: every payment granted and credited (or parked), no effect job left to run.
    const settleStart = Date.now();
    const pending = async () => {
      const { rows } = await pool.query<{ order_id: string; done: boolean }>(
        `SELECT o.order_id,
                coalesce((p.state_value->'routed'->>'access' IN ('invited', 'undeliverable') AND p.state_value->'routed'->>'payout' = 'accumulated')
                         OR p.review_reason IS NOT NULL, false)
                AND coalesce(j.open, 0) = 0 AS done
           FROM unnest($1::text[]) AS o(order_id)
           LEFT JOIN payments p ON p.order_id = o.order_id
           LEFT JOIN LATERAL (SELECT count(*) AS open FROM pgboss.job WHERE (name LIKE 'effect-%' OR name = 'effects-dead-letter') AND data->>'paymentId' = p.payment_id
                              AND state IN ('created', 'retry', 'active')) j ON true`,
        [orderIds],
      );
      return rows.filter((r) => !r.done).map((r) => r.order_id);
    };
    const settleTimeoutMs = options.settleTimeoutMs ?? 120_000;
    let left: string[] = [];
    try {
      await until(async () => {
        left = await pending();
        return left.length === 0 ? true : undefined;
      }, settleTimeoutMs, 'every payment to settle', 200);
    } catch {
      violations.push(`${left.length} payments did not settle within ${settleTimeoutMs} ms: ${left.slice(0, 5).join(', ')}`);
    }
    settledAll = true;
    await kills;
    await Promise.all(restarts.splice(0));
    await Promise.all(observations);
    report.timings.settleSeconds = Math.round((Date.now() - settleStart) / 100) / 10;

    // --- the guarantees
    const { rows: payments } = await pool.query<{ payment_id: string; order_id: string; access: string | null; payout: string | null; reason: string | null; link: string | null; undeliverable: string | null }>(
      `SELECT payment_id, order_id, state_value->'routed'->>'access' AS access, state_value->'routed'->>'payout' AS payout, review_reason AS reason,
              snapshot->'context'->'access'->>'inviteLink' AS link, snapshot->'context'->'access'->>'undeliverableReason' AS undeliverable
         FROM payments WHERE order_id = ANY($1)`,
      [orderIds],
    );
    const paymentsOf = new Map<string, typeof payments>();
    for (const p of payments) paymentsOf.set(p.order_id, [...(paymentsOf.get(p.order_id) ?? []), p]);

    // Orders a killed instance worked on, or whose Bot API answer never reached the instance that asked
    // (timed out under load): the only ones the at-most-once rule may leave "delivery unconfirmed" or
    // with an orphan link.
    const tapCalls = slots.flatMap((s) => s.tap.calls);
    for (const c of tapCalls) report.telegramCallsBy[c.by] = (report.telegramCallsBy[c.by] ?? 0) + 1;
    const touchedByKilled = new Set<string>();
    for (const c of tapCalls) {
      if (c.abandoned && !killedLives.has(c.by)) report.abandonedCalls += 1;
      if (!killedLives.has(c.by) && !c.abandoned) continue;
      const o = byClosed.get(String(c.body.chat_id)) ?? byBuyer.get(String(c.body.chat_id));
      if (o) touchedByKilled.add(o.orderId);
    }
    for (const s of slots) {
      if (s.role !== 'web') continue;
      const n = s.tap.calls.length;
      if (n > 0) violations.push(`web instance ${s.name} made ${n} Bot API call(s): a web instance must work no queue`);
    }

    const dmsTo = new Map<string, string[]>();
    for (const call of tg.callsOf('sendMessage')) {
      const url = call.acted ? inviteButton(call) : undefined;
      if (url) dmsTo.set(String(call.body.chat_id), [...(dmsTo.get(String(call.body.chat_id)) ?? []), url]);
    }
    const linksIn = new Map<string, Array<{ link: string; expire: number; limit: number | undefined; created: number }>>();
    const createdAt = new Map(tg.callsOf('createChatInviteLink').flatMap((c) => (c.acted && c.result ? [[(c.result as { invite_link: string }).invite_link, c.at] as const] : [])));
    for (const rec of tg.inviteLinks.values()) {
      const list = linksIn.get(String(rec.chatId)) ?? [];
      list.push({ link: rec.link.invite_link, expire: rec.link.expire_date ?? Infinity, limit: rec.link.member_limit, created: createdAt.get(rec.link.invite_link) ?? 0 });
      linksIn.set(String(rec.chatId), list);
    }
    const everySent = new Set([...dmsTo.values()].flat());
    const linkMakers = new Map(tapCalls.flatMap((c) => (c.link ? [[c.link, c] as const] : [])));
    // Link attempts the service itself counts as unowned (pending or lost): a live maker's link is one
    // when its job lost the lease before storing it (a heartbeat missed under load: another instance
    // took the job over and the late writer was fenced off), which the invite actor accepts and counts.
    const { rows: unownedRows } = await pool.query<{ order_id: string; name: string }>(
      `SELECT order_id, name FROM invite_link_attempts WHERE order_id = ANY($1) AND outcome IN ('pending', 'lost')`,
      [orders.map((o) => o.orderId)],
    );
    const unowned = new Set(unownedRows.map((r) => `${r.order_id} ${r.name}`));

    for (const o of orders) {
      const mine = paymentsOf.get(o.orderId) ?? [];
      if (mine.length !== 1) {
        violations.push(`order ${o.orderId}: ${mine.length} payments`);
        continue;
      }
      const p = mine[0]!;
      const dms = dmsTo.get(o.buyer) ?? [];
      const links = linksIn.get(o.closed) ?? [];
      const touched = touchedByKilled.has(o.orderId);
      report.dms.total += dms.length;
      report.dms.maxPerBuyer = Math.max(report.dms.maxPerBuyer, dms.length);
      report.links.total += links.length;
      if (dms.length > 1) violations.push(`order ${o.orderId}: its buyer got ${dms.length} invite DMs`);
      for (const url of dms) if (url !== p.link) violations.push(`order ${o.orderId}: a DM carries ${url}, the payment's link is ${p.link}`);
      if (p.access === 'invited' && !p.reason) {
        report.outcomes.invited += 1;
        if (dms.length !== 1) violations.push(`order ${o.orderId} is invited but its buyer got ${dms.length} DMs`);
      } else if (p.access === 'undeliverable' && /unconfirmed/.test(p.undeliverable ?? '') && !p.reason) {
        report.outcomes.unconfirmed += 1;
        if (!touched) violations.push(`order ${o.orderId}: delivery unconfirmed, but no killed instance worked on it and no answer was lost`);
      } else {
        report.outcomes.other += 1;
        violations.push(`order ${o.orderId}: ended with access ${p.access ?? '-'}, review ${p.reason ?? '-'} (${p.undeliverable ?? ''})`);
      }
      if (p.payout !== 'accumulated') violations.push(`order ${o.orderId}: payout region ${p.payout ?? '-'}, expected accumulated`);
      // Links at Telegram: the payment's, single-use; any other is an orphan a killed instance made, never sent, short-lived.
      const own = links.find((l) => l.link === p.link);
      if (!own) violations.push(`order ${o.orderId}: the payment's link ${p.link} is not at Telegram`);
      else if (own.limit !== 1) violations.push(`order ${o.orderId}: its link admits ${own.limit ?? 'any number of'} members`);
      for (const extra of links.filter((l) => l.link !== p.link)) {
        report.links.orphans += 1;
        // Only a creation whose maker never stored it leaves a link nobody owns: its answer was lost
        // (killed in flight, timed out) or its maker was killed right after hearing it.
        const maker = linkMakers.get(extra.link);
        const fenced = maker && unowned.has(`${o.orderId} ${String(maker.body.name)}`);
        const why = !maker
          ? 'made by no instance'
          : killedLives.has(maker.by)
            ? `made by killed ${maker.by}`
            : maker.abandoned
              ? `answer to ${maker.by} lost`
              : fenced
                ? `made by live ${maker.by} after its job was taken over (counted unowned)`
                : null;
        report.orphanOrigins.push(`${o.orderId}: ${why ?? `made by live ${maker!.by}, answered`}`);
        if (!why || (!touched && !fenced)) violations.push(`order ${o.orderId}: a second link ${extra.link} ${why ?? `that ${maker!.by} (alive) created and heard of`}`);
        if (everySent.has(extra.link)) violations.push(`order ${o.orderId}: orphan link ${extra.link} was sent`);
        if (extra.expire - Math.floor(extra.created / 1000) > 600 + 5) violations.push(`order ${o.orderId}: orphan link ${extra.link} lives longer than 10 minutes`);
      }
    }

    // Journal: seq 1..version without gaps; no event applied twice (every IPN arrived many times).
    const { rows: gaps } = await pool.query<{ payment_id: string }>(
      `SELECT p.payment_id FROM payments p LEFT JOIN payment_journal j USING (payment_id)
        WHERE p.order_id = ANY($1)
        GROUP BY p.payment_id, p.version
       HAVING count(j.seq) <> p.version OR min(j.seq) <> 1 OR max(j.seq) <> p.version OR count(DISTINCT j.seq) <> p.version`,
      [orderIds],
    );
    for (const g of gaps) violations.push(`payment ${g.payment_id}: journal seq is not 1..version`);
    const { rows: twice } = await pool.query<{ payment_id: string; event_type: string; n: string }>(
      `SELECT j.payment_id, j.event_type, count(*) AS n FROM payment_journal j JOIN payments p USING (payment_id)
        WHERE p.order_id = ANY($1) GROUP BY 1, 2 HAVING count(*) > 1`,
      [orderIds],
    );
    for (const t of twice) violations.push(`payment ${t.payment_id}: ${t.event_type} applied ${t.n} times`);
    // Money: the owner's share credited once per payment.
    const { rows: credits } = await pool.query<{ payment_id: string; n: string }>(
      `SELECT p.payment_id, count(l.entry_id) AS n FROM payments p LEFT JOIN ledger_entries l ON l.payment_id = p.payment_id AND l.kind = 'payment_credit'
        WHERE p.order_id = ANY($1) GROUP BY 1 HAVING count(l.entry_id) <> 1`,
      [orderIds],
    );
    for (const c of credits) violations.push(`payment ${c.payment_id}: ${c.n} owner credits`);
    // Jobs: none active past its expiry, no effect or dead-letter job left waiting.
    const { rows: jobs } = await pool.query<{ name: string; state: string; n: string }>(
      `SELECT name, state::text, count(*) AS n FROM pgboss.job
        WHERE (state = 'active' AND started_on + expire_seconds * interval '1 second' < now())
           OR ((name LIKE 'effect-%' OR name = 'effects-dead-letter') AND state IN ('created', 'retry', 'active'))
        GROUP BY 1, 2`,
    );
    for (const j of jobs) violations.push(`${j.n} job(s) of ${j.name} still ${j.state}`);
    if (report.kills !== options.kills) violations.push(`${report.kills} kills instead of ${options.kills}`);

    // --- every instance (the replacements included) stops cleanly on SIGTERM.
    const exits = await Promise.all(slots.map(async (s) => [s.name, await s.proc.stop()] as const));
    for (const [name, code] of exits) if (code !== 0) violations.push(`${name} did not shut down cleanly on SIGTERM (exit ${code})`);
  } finally {
    for (const s of slots) {
      s.proc.close();
      running.delete(s.proc);
    }
    await Promise.allSettled(restarts);
    for (const s of slots) await s.tap.close();
    await payouts.stop();
    await tg.close();
    await np.close();
    await pool.end();
  }
  report.timings.totalSeconds = Math.round((Date.now() - started) / 100) / 10;
  await writeFile(join(logDir, 'summary.txt'), `${summary(report)}\n`).catch(() => {});
  return report;
}

export function summary(r: ScaleOutReport): string {
  const byRole = r.roles.reduce<Record<string, number>>((acc, role) => ({ ...acc, [role]: (acc[role] ?? 0) + 1 }), {});
  return [
    `scale-out seed ${r.seed}: ${Object.entries(byRole).map(([role, n]) => `${n} ${role}`).join(' + ')} on one Postgres (${r.migrationsApplied} migrations applied by instances starting together), ${r.orders} orders`,
    `timings: instances up ${r.timings.startSeconds} s, storm ${r.timings.stormSeconds} s, settled ${r.timings.settleSeconds} s after it, total ${r.timings.totalSeconds} s`,
    `storm: ${r.ipnsSent} IPN requests; ${r.kills} SIGKILLs (active effect jobs just after: ${r.activeJobsAtKill.join(', ') || '-'}; requests in flight: ${r.inFlightAtKill.join(', ') || '-'})`,
    `Bot API requests that timed out (answer lost, no crash): ${r.abandonedCalls}`,
    `orphan links: ${r.orphanOrigins.join('; ') || '-'}`,
    `Bot API calls by instance: ${Object.entries(r.telegramCallsBy).map(([by, n]) => `${by} ${n}`).join(', ') || '-'}`,
    `outcomes: ${r.outcomes.invited} invited, ${r.outcomes.unconfirmed} delivery unconfirmed, ${r.outcomes.other} other; DMs ${r.dms.total} (at most ${r.dms.maxPerBuyer} per buyer); links ${r.links.total} (${r.links.orphans} orphans)`,
    r.violations.length ? `VIOLATIONS (${r.violations.length}):\n  ${r.violations.slice(0, 30).join('\n  ')}` : 'all guarantees held',
    `instance logs: ${r.logDir}`,
  ].join('\n');
}

function argValue(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const value = Number(args[i + 1]);
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} needs a whole number`);
  return value;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const roles: Role[] = [
    ...Array<Role>(Math.min(argValue(args, 'web', 2), 10)).fill('web'),
    ...Array<Role>(Math.min(argValue(args, 'workers', 2), 10)).fill('worker'),
    ...Array<Role>(Math.min(argValue(args, 'all', 1), 10)).fill('all'),
  ];
  const orders = Math.min(argValue(args, 'orders', 200), 5_000);
  const seed = argValue(args, 'seed', Date.now() % 1_000_000);
  const kills = Math.min(argValue(args, 'kills', 3), 50);
  const repeats = Math.max(1, Math.min(argValue(args, 'repeats', 2), 20));
  const say = (line: string) => process.stdout.write(`${line}\n`);

  const db = await openRunDatabase('scaleout', `telepay_scaleout_${seed}_${process.pid}`, { say, onSignal: () => running.forEach((proc) => proc.close()) });
  try {
    const report = await runScaleOut({ databaseUrl: db.url, roles, orders, repeats, kills, seed, concurrency: 24, settleTimeoutMs: 180_000, poolMax: 5, say });
    say(summary(report));
    process.exitCode = report.violations.length ? 1 : 0;
    if (report.violations.length === 0 && !args.includes('--keep-logs')) await rm(report.logDir, { recursive: true, force: true });
  } finally {
    await db.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error: unknown) => {
    process.stderr.write(`scale-out run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
