import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { configSchema } from '../src/config.js';
import { migrate } from '../src/persistence/migrate.js';
import { startFakeNowPayments, type FakeNowPayments, type FakePayment } from '../src/sandbox/nowpayments.fake.js';
import { startFakeTelegram, type Fault, type FakeTelegram, type TelegramCall } from '../src/sandbox/telegram.fake.js';
import { orphanInviteLinks } from '../src/telegram/invites.repo.js';
import { freePort } from '../src/persistence/scratch-postgres.js';
import { openRunDatabase } from './run-database.js';

// Chaos run of the whole service (docs/chaos.md). The service runs as `npm start` does (src/main.ts)
// in a child process on a database of its own, against a fake NowPayments and a fake Telegram Bot API
// that live here, in the parent, on fixed addresses, so a restarted service finds them again. Buyers
// order through POST /api/orders; "NowPayments" sends signed IPNs to the real webhook (repeated until
// answered 200, as NowPayments does, with duplicates and stale repeats); the Bot API answers with
// injected faults (429, 5xx, 403, timeouts before and after acting). Meanwhile the service is SIGKILLed
// at random moments and restarted, its database connections are terminated, and (with a private
// cluster) Postgres itself is restarted. At the end the invariants are checked and figures reported.
//
//   npm run chaos                      300 payments, seeded, ~3-5 minutes
//   npm run chaos -- --payments 100 --kills 6 --seed 42 --fault-rate 0.3 --pg-restarts 1
//
// Database: DATABASE_URL's server when set (a scratch database is created and dropped), else a
// private embedded cluster in a temporary directory (the only case where Postgres is restarted).
// test/chaos.test.ts runs a short version (about 40 payments) in `npm test`.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const API_KEY = 'chaos-nowpayments-api-key';
const IPN_SECRET = 'chaos-nowpayments-ipn-secret';
const BOT_TOKEN = '777001:chaos-bot-token';
const STATUS_SECRET = 'chaos-status-token-secret-0123456789abcdef';
const ADMIN_TOKEN = 'chaos-admin-token-0123456789';

export interface ChaosOptions {
  /** A database the service may own (migrated here if it is not yet). */
  databaseUrl: string;
  payments: number;
  seed: number;
  /** SIGKILLs of the service (each followed by a restart). */
  kills: number;
  /** Share of payments that get a Telegram fault queued (0..1). */
  faultRate: number;
  /** Concurrent buyers. */
  concurrency?: number;
  /** How long buyers keep arriving (ms); kills fall inside this window. */
  arrivalWindowMs?: number;
  /** Terminate the service's database connections every this often (ms); 0 = never. */
  terminateEveryMs?: number;
  /** Restart Postgres this many times (needs `postgres`). */
  pgRestarts?: number;
  postgres?: { restart(): Promise<void> };
  /** Give up waiting for the payments to settle after this long (ms; an IPN kept for reconciliation needs up to ~2 min). */
  settleTimeoutMs?: number;
  /** Where the service's output goes (one file for all its lives). */
  logFile?: string;
  say?: (line: string) => void;
}

export interface ChaosReport {
  seed: number;
  payments: number;
  kills: number;
  connectionTerminations: number;
  pgRestarts: number;
  /** Seconds from each kill until the service answered again (start-up included). */
  restartSeconds: number[];
  outcomes: { invited: number; undeliverable: number; review: number; other: number };
  dms: { total: number; maxPerBuyer: number; buyersWithTwo: number };
  orphanLinks: { atTelegram: number; counted: number; per100Payments: number; longestLifetimeSeconds: number };
  faultsQueued: number;
  /** IPNs answered 200 "kept; it will be applied by reconciliation" (their apply met a dropped connection). */
  ipnsKeptForReconciliation: number;
  durationSeconds: number;
  logFile: string;
  /** Every invariant that did not hold; empty when the run passed. */
  violations: string[];
}

/** mulberry32: small, fast, good enough to make a run repeatable from its seed. */
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The parent's environment without any of the service's own variables (nothing leaks in from the shell or the test runner). */
export function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const ours = new Set(Object.keys(configSchema.shape));
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || ours.has(key) || key === 'NODE_OPTIONS' || key.startsWith('VITEST')) continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

/** Services running now: a chaos run interrupted (Ctrl-C) kills them before it leaves. */
const running = new Set<ServiceProcess>();

/** `node --import tsx src/main.ts` as a child: started, awaited until up, killed, stopped. */
export class ServiceProcess {
  child: ChildProcess | null = null;
  private readonly log: WriteStream;
  /** Everything the service printed in this life (its stdout and stderr). */
  output = '';
  constructor(
    private readonly env: Record<string, string>,
    logFile: string,
    /** Its own process group, like a command in a terminal: `signalGroup` then reaches it as Ctrl-C would. */
    private readonly detached = false,
  ) {
    this.log = createWriteStream(logFile, { flags: 'a' });
  }

  /** Resolves once the service logged "TelePay Engine is up"; rejects with its last output if it exits first. */
  async start(timeoutMs = 90_000): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: this.env, stdio: ['ignore', 'pipe', 'pipe'], detached: this.detached });
    this.child = child;
    this.output = '';
    running.add(this);
    this.log.write(`--- start pid ${child.pid} at ${new Date().toISOString()}\n`);
    let tail = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`service not up within ${timeoutMs} ms: ${tail.slice(-800)}`)), timeoutMs);
      const onData = (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        this.log.write(text);
        this.output += text;
        tail = (tail + text).slice(-4_000);
        if (tail.includes('TelePay Engine is up')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`service exited while starting (${signal ?? `code ${code}`}): ${tail.slice(-800)}`));
      });
    });
  }

  /** A signal to the service's whole process group (it must have been started detached), as a terminal's Ctrl-C sends it. */
  signalGroup(signal: NodeJS.Signals): void {
    if (this.child?.pid) process.kill(-this.child.pid, signal);
  }

  /** Resolves with the exit code (null: killed by a signal) once the service exited. */
  exited(): Promise<number | null> {
    const child = this.child;
    if (!child) return Promise.resolve(null);
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
    return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  kill9(): void {
    this.log.write(`--- SIGKILL pid ${this.child?.pid} at ${new Date().toISOString()}\n`);
    this.child?.kill('SIGKILL');
    this.child = null;
  }

  /** SIGTERM and wait: the exit code (0 = a clean shutdown). */
  async stop(timeoutMs = 30_000): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    const code = await Promise.race([exited, sleep(timeoutMs).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      child.kill('SIGKILL');
      return null;
    }
    this.child = null;
    return code;
  }

  close(): void {
    this.child?.kill('SIGKILL');
    this.log.end();
    running.delete(this);
  }
}

const buttonUrl = (call: TelegramCall): string | undefined => {
  const markup = (typeof call.body.reply_markup === 'string' ? JSON.parse(call.body.reply_markup) : call.body.reply_markup) as
    | { inline_keyboard?: { url?: string }[][] }
    | undefined;
  return markup?.inline_keyboard?.flat().find((b) => b.url?.startsWith('https://t.me/+'))?.url;
};

/** The Telegram faults a payment may bring; weights sum to 1. */
const FAULTS: Array<[number, string, Fault]> = [
  [0.22, 'sendMessage', { kind: '429', retryAfter: 1 }],
  [0.14, 'sendMessage', { kind: '500' }],
  [0.08, 'sendMessage', { kind: '403', description: 'Forbidden: bot was blocked by the user' }],
  [0.1, 'sendMessage', { kind: 'timeout-after-acting', hangMs: 2_500 }],
  [0.06, 'sendMessage', { kind: 'timeout-before-acting', hangMs: 2_500 }],
  [0.12, 'createChatInviteLink', { kind: 'timeout-after-acting', hangMs: 2_500 }],
  [0.1, 'createChatInviteLink', { kind: '429', retryAfter: 1 }],
  [0.08, 'createChatInviteLink', { kind: '500' }],
  [0.05, 'editChatInviteLink', { kind: '500' }],
  [0.05, 'editChatInviteLink', { kind: 'timeout-after-acting', hangMs: 2_500 }],
];

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const say = options.say ?? (() => {});
  const random = prng(options.seed);
  const concurrency = options.concurrency ?? 8;
  const arrivalWindowMs = options.arrivalWindowMs ?? Math.max(8_000, options.payments * 150);
  const terminateEveryMs = options.terminateEveryMs ?? 3_000;
  const logFile = options.logFile ?? join(tmpdir(), `telepay-chaos-${options.seed}-${process.pid}.log`);
  const violations: string[] = [];

  // The observer's own pool: not application_name 'telepay', so terminating the service's connections spares it.
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 4, application_name: 'telepay-chaos' });
  pool.on('error', () => {});
  await migrate(pool);

  const np: FakeNowPayments = await startFakeNowPayments({ apiKey: API_KEY, ipnSecret: IPN_SECRET });
  const tg: FakeTelegram = await startFakeTelegram({ token: BOT_TOKEN });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const service = new ServiceProcess(
    cleanEnv({
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: String(port),
      PUBLIC_BASE_URL: base,
      LOG_LEVEL: 'info',
      DATABASE_URL: options.databaseUrl,
      DB_POOL_MAX: '10',
      ADMIN_TOKEN,
      STATUS_TOKEN_SECRET: STATUS_SECRET,
      NOWPAYMENTS_API_URL: np.url,
      NOWPAYMENTS_API_KEY: API_KEY,
      NOWPAYMENTS_IPN_SECRET: IPN_SECRET,
      ORDER_RATE_LIMIT: '1000000',
      STATUS_RATE_LIMIT: '1000000',
      // An IPN whose apply failed (a dropped connection) is kept and answered 200; reconciliation
      // re-applies it a minute later (ipn.service, reconcile.job), as in production.
      RECONCILE_EVERY: '* * * * *',
      RECONCILE_AFTER: '1m',
      TELEGRAM_BOT_TOKEN: BOT_TOKEN,
      TELEGRAM_API_ROOT: tg.apiRoot,
      TELEGRAM_REQUEST_TIMEOUT: '2s',
      JOB_RETRY_LIMIT: '10',
      JOB_RETRY_DELAY: '1s',
      JOB_RETRY_DELAY_MAX: '3s',
      JOB_HEARTBEAT: '10s',
      JOB_SUPERVISE_EVERY: '1s',
      SHUTDOWN_GRACE: '10s',
    }),
    logFile,
  );

  const report: ChaosReport = {
    seed: options.seed,
    payments: options.payments,
    kills: 0,
    connectionTerminations: 0,
    pgRestarts: 0,
    restartSeconds: [],
    outcomes: { invited: 0, undeliverable: 0, review: 0, other: 0 },
    dms: { total: 0, maxPerBuyer: 0, buyersWithTwo: 0 },
    orphanLinks: { atTelegram: 0, counted: 0, per100Payments: 0, longestLifetimeSeconds: 0 },
    faultsQueued: 0,
    ipnsKeptForReconciliation: 0,
    durationSeconds: 0,
    logFile,
    violations,
  };

  try {
    // Channels as the admin API writes them. A threshold no order reaches keeps payouts (a local chain
    // that a restart replaces) out of the picture: this run is about access.
    const runTag = `${options.seed}${Date.now() % 100_000}`;
    const channels = Array.from({ length: 4 }, (_, i) => ({ open: String(-1_009_000_000_000 - Number(runTag) * 10 - i), plan: `chaos-plan-${i}` }));
    for (const c of channels) {
      await pool.query(
        `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network, payout_strategy, threshold_usd)
         VALUES ($1, $2, $3, '0x0000000000000000000000000000000000000001', 'usdt', 'trx', 'threshold', 1000000)`,
        [c.open, String(Number(c.open) - 1_000_000_000_000), `Chaos ${c.open}`],
      );
      await pool.query(`INSERT INTO plans (plan_id, open_channel_id, title, price_usd, duration_days) VALUES ($1, $2, '30 days', '10.00', 30)`, [c.plan, c.open]);
    }

    await service.start();
    say(`service up on ${base}; log: ${logFile}`);

    // --- chaos: kills, connection terminations, Postgres restarts, while buyers arrive
    let restarting: Promise<void> | null = null;
    let chaosOn = true;
    const killAt = Array.from({ length: options.kills }, () => 1_500 + random() * (arrivalWindowMs + 4_000)).sort((a, b) => a - b);
    const pgRestartAt = Array.from({ length: options.postgres ? (options.pgRestarts ?? 0) : 0 }, () => 2_000 + random() * arrivalWindowMs).sort((a, b) => a - b);
    const chaosStart = Date.now();
    const kills = (async () => {
      for (const at of killAt) {
        const wait = at - (Date.now() - chaosStart);
        if (wait > 0) await sleep(wait);
        if (restarting) await restarting;
        const killedAt = Date.now();
        service.kill9();
        report.kills += 1;
        say(`kill ${report.kills} at ${((killedAt - chaosStart) / 1000).toFixed(1)} s`);
        restarting = (async () => {
          await sleep(Math.random() * 1_500);
          // A start can itself be cut off (its connection terminated mid-migration): like systemd or
          // Kubernetes, start it again.
          for (let tries = 1; ; tries++) {
            try {
              await service.start();
              break;
            } catch (error) {
              if (tries >= 5) throw error;
              say(`start ${tries} failed (${(error as Error).message.slice(0, 120)}); starting again`);
            }
          }
          report.restartSeconds.push(Math.round((Date.now() - killedAt) / 100) / 10);
        })();
        await restarting;
        restarting = null;
      }
    })();
    const terminations = (async () => {
      if (terminateEveryMs <= 0) return;
      let n = 0;
      while (chaosOn) {
        await sleep(terminateEveryMs * (0.5 + Math.random()));
        if (!chaosOn) break;
        n += 1;
        // The service's pool every time; pg-boss's connections and the shared LISTEN connection every third time.
        const names = n % 3 === 0 ? ['telepay', 'telepay-boss', 'telepay-listener'] : ['telepay'];
        const { rowCount } = await pool
          .query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = ANY($1)`, [names])
          .catch(() => ({ rowCount: 0 }));
        if ((rowCount ?? 0) > 0) report.connectionTerminations += 1;
      }
    })();
    const pgRestarts = (async () => {
      for (const at of pgRestartAt) {
        const wait = at - (Date.now() - chaosStart);
        if (wait > 0) await sleep(wait);
        say('restarting Postgres');
        await options.postgres!.restart();
        report.pgRestarts += 1;
      }
    })();

    // --- buyers
    const orderIds: string[] = new Array<string>(options.payments);
    const post = async (path: string, body: unknown): Promise<Response> => {
      for (let attempt = 0; attempt < 600; attempt++) {
        try {
          const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
          if (res.status < 500) return res;
        } catch {
          // the service is down (killed) or restarting: NowPayments and buyers try again
        }
        await sleep(100 + Math.random() * 200);
      }
      throw new Error(`POST ${path}: no answer after many tries`);
    };
    const deliver = async (payment: FakePayment): Promise<void> => {
      for (let attempt = 0; attempt < 600; attempt++) {
        try {
          const { status, body } = await np.sendIpn(payment);
          if (status === 200 && body.includes('"stored"')) report.ipnsKeptForReconciliation += 1;
          if (status === 200) return;
        } catch {
          // refused or reset: the service is down; NowPayments retries
        }
        await sleep(100 + Math.random() * 200);
      }
      throw new Error(`IPN for payment ${payment.payment_id} never answered 200`);
    };
    // Each buyer's part of the run, drawn up front from the seed: when they arrive, which fault their
    // payment brings, which IPNs NowPayments repeats.
    const plans = Array.from({ length: options.payments }, () => {
      const arrival = random() * arrivalWindowMs;
      const faulty = random() < options.faultRate;
      const pick = random();
      let acc = 0;
      const fault = faulty ? FAULTS.find(([weight]) => (acc += weight) > pick) : undefined;
      const repeats = Array.from({ length: 3 }, () => ({ duplicate: random() < 0.2, stale: random() < 0.15, which: random() }));
      return { arrival, fault, repeats };
    }).sort((a, b) => a.arrival - b.arrival);
    // Ethereum, as the sandbox buyer pays: 10 USD at 3,000 USD per ETH, NowPayments keeping 0.5 %.
    const payAmount = '0.00333334';
    const outcomeAmount = '0.0033166733';
    const buyer = async (i: number) => {
      const plan = plans[i]!;
      const wait = chaosStart + plan.arrival - Date.now();
      if (wait > 0) await sleep(wait);
      if (plan.fault) {
        tg.failNext(plan.fault[1], plan.fault[2]);
        report.faultsQueued += 1;
      }
      const channel = channels[i % channels.length]!;
      const res = await post('/api/orders', { telegram_user_id: String(800_000_000 + i), open_channel_id: channel.open, plan_id: channel.plan });
      if (res.status !== 201) throw new Error(`order for buyer ${i}: HTTP ${res.status} ${await res.text()}`);
      const orderId = ((await res.json()) as { order_id: string }).order_id;
      orderIds[i] = orderId;
      const seen: FakePayment[] = [];
      for (const [n, status] of (['waiting', 'confirming', 'finished'] as const).entries()) {
        const arrived = status !== 'waiting';
        const snapshot = np.pay(orderId, {
          status,
          payCurrency: 'eth',
          payAmount,
          outcomeCurrency: 'eth',
          actuallyPaid: arrived ? payAmount : '0',
          outcomeAmount: arrived ? outcomeAmount : '0',
        });
        seen.push(snapshot);
        await deliver(snapshot);
        // NowPayments repeats itself: a duplicate now and then, or a stale status after a newer one.
        const repeat = plan.repeats[n]!;
        if (repeat.duplicate) await deliver(snapshot);
        if (repeat.stale && seen.length > 1) await deliver(seen[Math.floor(repeat.which * (seen.length - 1))]!);
      }
    };
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < options.payments) await buyer(next++);
      }),
    );
    say(`all ${options.payments} payments paid and their IPNs answered; waiting for the chaos to end`);
    await kills;
    await pgRestarts;
    chaosOn = false;
    await terminations;
    if (restarting) await restarting;
    if (!service.child) await service.start();

    // --- settle: every payment granted or parked, no effect job left to run
    const deadline = Date.now() + (options.settleTimeoutMs ?? 180_000);
    let pending: string[] = [];
    for (;;) {
      const { rows } = await pool.query<{ order_id: string; done: boolean }>(
        `SELECT o.order_id, (p.state_value->'routed'->>'access' IN ('invited', 'undeliverable') OR p.review_reason IS NOT NULL) AND coalesce(j.open, 0) = 0 AS done
           FROM unnest($1::text[]) AS o(order_id)
           LEFT JOIN payments p ON p.order_id = o.order_id
           LEFT JOIN LATERAL (SELECT count(*) AS open FROM pgboss.job WHERE (name LIKE 'effect-%' OR name = 'effects-dead-letter') AND data->>'paymentId' = p.payment_id
                              AND state IN ('created', 'retry', 'active')) j ON true`,
        [orderIds],
      );
      pending = rows.filter((r) => !r.done).map((r) => r.order_id);
      if (pending.length === 0 || Date.now() > deadline) break;
      await sleep(500);
    }
    if (pending.length > 0) violations.push(`${pending.length} payments did not settle within the timeout: ${pending.slice(0, 5).join(', ')}`);

    // --- invariants
    const { rows: payments } = await pool.query<{ payment_id: string; order_id: string; state: string; review_reason: string | null; access: string | null; link: string | null; buyer: string; stored: string | null }>(
      `SELECT p.payment_id, p.order_id, p.state, p.review_reason, p.state_value->'routed'->>'access' AS access,
              p.snapshot->'context'->'access'->>'inviteLink' AS link, o.buyer_telegram_id::text AS buyer, i.invite_link AS stored
         FROM payments p JOIN orders o USING (order_id) LEFT JOIN invites i USING (order_id)
        WHERE p.order_id = ANY($1)`,
      [orderIds],
    );
    if (payments.length !== options.payments) violations.push(`${payments.length} payments recorded for ${options.payments} orders`);
    const dmsTo = new Map<string, string[]>();
    for (const call of tg.callsOf('sendMessage')) {
      const url = call.acted ? buttonUrl(call) : undefined;
      if (!url) continue;
      const list = dmsTo.get(String(call.body.chat_id)) ?? [];
      list.push(url);
      dmsTo.set(String(call.body.chat_id), list);
    }
    for (const p of payments) {
      const dms = dmsTo.get(p.buyer) ?? [];
      report.dms.total += dms.length;
      report.dms.maxPerBuyer = Math.max(report.dms.maxPerBuyer, dms.length);
      if (dms.length > 1) {
        report.dms.buyersWithTwo += 1;
        violations.push(`buyer ${p.buyer} (order ${p.order_id}) got ${dms.length} invite DMs`);
      }
      for (const url of dms) {
        if (url !== p.stored || url !== p.link) violations.push(`order ${p.order_id}: the DM carries ${url}, the stored link is ${p.stored}, the payment's is ${p.link}`);
      }
      if (p.access === 'invited') {
        report.outcomes.invited += 1;
        if (dms.length !== 1) violations.push(`order ${p.order_id} is invited but its buyer got ${dms.length} DMs`);
      } else if (p.access === 'undeliverable') report.outcomes.undeliverable += 1;
      else if (p.review_reason) report.outcomes.review += 1;
      else {
        report.outcomes.other += 1;
        violations.push(`payment ${p.payment_id} (order ${p.order_id}) ended in ${p.state}/${p.access ?? '-'} without a grant or a review reason`);
      }
      if ((p.access === 'invited' || p.access === 'undeliverable') && (!p.link || p.link !== p.stored)) {
        violations.push(`order ${p.order_id}: access ${p.access} with link ${p.link}, stored ${p.stored}`);
      }
      // A link that was sent lives its full lifetime and admits one.
      const rec = p.stored ? tg.inviteLinks.get(p.stored) : undefined;
      if (dms.length > 0 && (!rec || rec.link.member_limit !== 1 || (rec.link.expire_date ?? 0) * 1000 - Date.now() < 20 * 3_600_000)) {
        violations.push(`order ${p.order_id}: the link sent is not single-use with its full lifetime at Telegram`);
      }
    }

    // Links at Telegram that no order owns: each short-lived, and counted.
    const { rows: storedRows } = await pool.query<{ invite_link: string }>(`SELECT invite_link FROM invite_link_attempts WHERE outcome = 'stored'`);
    const stored = new Set(storedRows.map((r) => r.invite_link));
    const createdAt = new Map(tg.callsOf('createChatInviteLink').flatMap((c) => (c.acted && c.result ? [[(c.result as { invite_link: string }).invite_link, c.at] as const] : [])));
    const orphans = [...tg.inviteLinks.values()].filter((rec) => !stored.has(rec.link.invite_link));
    report.orphanLinks.atTelegram = orphans.length;
    report.orphanLinks.counted = await orphanInviteLinks(pool, { inFlightMs: 0 });
    report.orphanLinks.per100Payments = Math.round((orphans.length / options.payments) * 1000) / 10;
    for (const rec of orphans) {
      const lifetime = (rec.link.expire_date ?? Infinity) - Math.floor((createdAt.get(rec.link.invite_link) ?? 0) / 1000);
      report.orphanLinks.longestLifetimeSeconds = Math.max(report.orphanLinks.longestLifetimeSeconds, lifetime);
      if (lifetime > 600 + 5) violations.push(`orphan link ${rec.link.invite_link} (${rec.link.name}) lives ${lifetime} s`);
      if (tg.calls.some((c) => c.method === 'sendMessage' && JSON.stringify(c.body).includes(rec.link.invite_link))) violations.push(`orphan link ${rec.link.invite_link} was sent to someone`);
    }
    if (orphans.length > report.orphanLinks.counted) violations.push(`${orphans.length} orphan links at Telegram, only ${report.orphanLinks.counted} counted`);

    // Journal: versions contiguous, seq 1..version for every payment.
    const { rows: gaps } = await pool.query<{ payment_id: string }>(
      `SELECT p.payment_id FROM payments p LEFT JOIN payment_journal j USING (payment_id)
        WHERE p.order_id = ANY($1)
        GROUP BY p.payment_id, p.version
       HAVING count(j.seq) <> p.version OR min(j.seq) <> 1 OR max(j.seq) <> p.version OR count(DISTINCT j.seq) <> p.version`,
      [orderIds],
    );
    for (const g of gaps) violations.push(`payment ${g.payment_id}: journal seq is not 1..version`);

    // Jobs: none active past its expiry, none of the engine's queues left waiting.
    const { rows: jobs } = await pool.query<{ name: string; state: string; n: string }>(
      `SELECT name, state::text, count(*) AS n FROM pgboss.job
        WHERE (state = 'active' AND started_on + expire_seconds * interval '1 second' < now())
           OR ((name LIKE 'effect-%' OR name = 'effects-dead-letter') AND state IN ('created', 'retry', 'active'))
        GROUP BY 1, 2`,
    );
    for (const j of jobs) violations.push(`${j.n} job(s) of ${j.name} still ${j.state}`);

    const exit = await service.stop();
    if (exit !== 0) violations.push(`the service did not shut down cleanly on SIGTERM (exit ${exit})`);
  } finally {
    service.close();
    await tg.close();
    await np.close();
    await pool.end();
  }
  report.durationSeconds = Math.round((Date.now() - started) / 1000);
  return report;
}

export function summary(r: ChaosReport): string {
  return [
    `chaos seed ${r.seed}: ${r.payments} payments in ${r.durationSeconds} s; ${r.kills} SIGKILLs (back in ${r.restartSeconds.join(', ') || '-'} s), ${r.connectionTerminations} connection terminations, ${r.pgRestarts} Postgres restarts, ${r.faultsQueued} Telegram faults`,
    `IPNs kept for reconciliation (apply met a dropped connection): ${r.ipnsKeptForReconciliation}`,
    `outcomes: ${r.outcomes.invited} invited, ${r.outcomes.undeliverable} undeliverable, ${r.outcomes.review} in review, ${r.outcomes.other} other`,
    `DMs: ${r.dms.total} in all, at most ${r.dms.maxPerBuyer} per buyer, ${r.dms.buyersWithTwo} buyers with two`,
    `orphan links: ${r.orphanLinks.atTelegram} at Telegram (${r.orphanLinks.per100Payments} per 100 payments), ${r.orphanLinks.counted} counted, longest lifetime ${r.orphanLinks.longestLifetimeSeconds} s`,
    r.violations.length ? `VIOLATIONS (${r.violations.length}):\n  ${r.violations.slice(0, 30).join('\n  ')}` : 'all invariants held',
    `service log: ${r.logFile}`,
  ].join('\n');
}

function argValue(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const value = Number(args[i + 1]);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} needs a number`);
  return value;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const payments = Math.min(argValue(args, 'payments', 300), 5_000);
  const seed = argValue(args, 'seed', Date.now() % 1_000_000);
  const kills = Math.min(argValue(args, 'kills', Math.max(3, Math.round(payments / 30))), 100);
  const faultRate = Math.min(argValue(args, 'fault-rate', 0.3), 1);
  const pgRestarts = Math.min(argValue(args, 'pg-restarts', 1), 10);
  const say = (line: string) => process.stdout.write(`${line}\n`);

  const db = await openRunDatabase('chaos', `telepay_chaos_${seed}_${process.pid}`, { say, onSignal: () => running.forEach((service) => service.close()) });
  try {
    const report = await runChaos({
      databaseUrl: db.url,
      payments,
      seed,
      kills,
      faultRate,
      concurrency: 12,
      settleTimeoutMs: 180_000,
      say,
      ...(db.restart && { pgRestarts, postgres: { restart: db.restart } }),
    });
    say(summary(report));
    process.exitCode = report.violations.length ? 1 : 0;
  } finally {
    await db.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error: unknown) => {
    process.stderr.write(`chaos run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
