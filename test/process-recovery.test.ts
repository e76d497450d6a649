import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, ServiceProcess } from '../scripts/chaos.js';
import { createEngine } from '../src/persistence/apply-event.js';
import { createBoss } from '../src/persistence/queues.js';
import { freePort } from '../src/persistence/scratch-postgres.js';
import { IPN_PATH } from '../src/http/routes/ipn.route.js';
import { signIpn } from '../src/nowpayments/signature.js';
import { startFakeTelegram, type FakeTelegram } from '../src/sandbox/telegram.fake.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { accessOf, buttonUrl, callsTo, paidOrderFixture, payAndRoute, TOKEN } from './telegram-fixtures.js';

// A worker killed while it holds a job (kill -9: nothing completes or fails the job) does not hold the
// payment for JOB_EXPIRE_AFTER (5 min) plus pg-boss's supervisor interval: the job's heartbeat stops,
// any other instance's supervisor fails it into 'retry' after JOB_HEARTBEAT, and a worker resumes it.
// Here the service (`src/main.ts`, every actor) runs in a child process on the test database; its
// invite actor is in a 429 wait (Telegram asked for 25 s) when it is SIGKILLed; a second instance
// takes the payment over and sends the one DM. The measured time is printed, not asserted. The second
// test has the instance take the finished IPN itself, so it runs the invite eagerly (claimed in the
// transition's own statement, never fetched: src/actors/eager-jobs.ts) when it is killed.

let db: TestDatabase;
let tg: FakeTelegram;
const logFile = join(tmpdir(), `telepay-process-recovery-${process.pid}.log`);

beforeAll(async () => {
  db = await createTestDatabase();
  tg = await startFakeTelegram({ token: TOKEN });
});
afterAll(async () => {
  await tg?.close();
  await db?.drop();
});

const IPN_SECRET = 'process-test-ipn-secret';
const serviceEnv = (port = 0) =>
  cleanEnv({
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'info',
    DATABASE_URL: db.url,
    NOWPAYMENTS_API_URL: 'http://127.0.0.1:9',
    NOWPAYMENTS_API_KEY: 'process-test-key',
    NOWPAYMENTS_IPN_SECRET: IPN_SECRET,
    STATUS_TOKEN_SECRET: 'process-test-status-token-secret-0123456789',
    RECONCILE_EVERY: '0 0 1 1 *',
    TELEGRAM_BOT_TOKEN: TOKEN,
    TELEGRAM_API_ROOT: tg.apiRoot,
    JOB_RETRY_DELAY: '1s',
    JOB_RETRY_DELAY_MAX: '2s',
    JOB_HEARTBEAT: '10s',
    JOB_SUPERVISE_EVERY: '1s',
  });

type Order = Awaited<ReturnType<typeof paidOrderFixture>>;

/**
 * Waits until the invite is in Telegram's 429 wait with the refusal recorded (the "send attempted" mark
 * cleared): a kill in the instant between Telegram's 429 and that record is the case the service must
 * treat as "delivery unconfirmed" (never a second DM), which is not what these tests are about.
 */
async function inRecordedRateLimitWait(o: Order): Promise<void> {
  await tg.waitForCall('sendMessage', (c) => String(c.body.chat_id) === o.buyer && c.fault?.kind === '429', { timeoutMs: 30_000 });
  for (let i = 0; i < 200; i++) {
    const { rows } = await db.pool.query<{ attempted: Date | null }>('SELECT send_attempted_at AS attempted FROM invites WHERE order_id = $1', [o.orderId]);
    if (rows[0] && rows[0].attempted === null) break;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Kills `first`, starts `second`, and checks that it resumed the invite: one DM, the stored link, the job retried and completed. */
async function killAndResume(first: ServiceProcess, second: ServiceProcess, o: Order, label: string): Promise<void> {
  first.kill9();
  const killedAt = Date.now();
  await second.start();
  // Bounded by the test's timeout; JOB_EXPIRE_AFTER (5 min) alone would not make it.
  for (let i = 0; i < 1_200 && (await accessOf(db, o.paymentId)).access !== 'invited'; i++) await new Promise((r) => setTimeout(r, 50));
  const access = await accessOf(db, o.paymentId);
  const seconds = (Date.now() - killedAt) / 1000;
  process.stdout.write(`${label}: payment resumed by the second instance ${seconds.toFixed(1)} s after the SIGKILL (heartbeat 10 s, supervisor every 1 s; log ${logFile})\n`);

  expect(access.access).toBe('invited');
  const dms = callsTo(tg, 'sendMessage', o.buyer);
  expect(dms).toHaveLength(1);
  expect(buttonUrl(dms[0])).toBe(access.link);
  const { rows: job } = await db.pool.query(`SELECT state, retry_count FROM pgboss.job WHERE name = 'effect-invite' AND data->>'paymentId' = $1`, [o.paymentId]);
  expect(job[0]).toMatchObject({ state: 'completed' });
  expect(job[0].retry_count).toBeGreaterThanOrEqual(1);
  expect(await second.stop()).toBe(0);
}

describe('a worker killed while holding a job', () => {
  it('SIGKILL during the invite: a second instance resumes the payment within seconds and sends exactly one DM', async () => {
    // Events are applied from here (as the route actor and an IPN would); this process works no queue and supervises nothing.
    const boss = createBoss(db.url, { max: 2, schedule: false, supervise: false });
    boss.on('error', () => {});
    await boss.start();
    const engine = createEngine({ pool: db.pool });
    const first = new ServiceProcess(serviceEnv(), logFile);
    const second = new ServiceProcess(serviceEnv(), logFile);
    try {
      await first.start();
      const o = await paidOrderFixture(db);
      tg.failNext('sendMessage', { kind: '429', retryAfter: 25 });
      await payAndRoute(engine, o.paymentId, o);
      await inRecordedRateLimitWait(o);
      const { rows: held } = await db.pool.query(`SELECT state FROM pgboss.job WHERE name = 'effect-invite' AND data->>'paymentId' = $1`, [o.paymentId]);
      expect(held.map((j) => j.state)).toEqual(['active']);
      await killAndResume(first, second, o, 'process-recovery');
    } finally {
      first.close();
      second.close();
      await boss.stop({ graceful: false, close: true });
    }
  }, 120_000);

  it('SIGKILL while the instance that took the finished IPN runs the invite eagerly: a second instance resumes it within seconds and sends exactly one DM', async () => {
    const port = await freePort();
    const first = new ServiceProcess(serviceEnv(port), logFile);
    const second = new ServiceProcess(serviceEnv(), logFile);
    try {
      await first.start();
      const o = await paidOrderFixture(db);
      tg.failNext('sendMessage', { kind: '429', retryAfter: 25 });
      const ipn = { payment_id: Number(o.paymentId), payment_status: 'finished', order_id: o.orderId, pay_amount: 10, actually_paid: 10, pay_currency: 'usdttrc20', price_amount: 10, price_currency: 'usd' };
      const answer = await fetch(`http://127.0.0.1:${port}${IPN_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-nowpayments-sig': signIpn(ipn, IPN_SECRET) },
        body: JSON.stringify(ipn),
      });
      expect(answer.status).toBe(200);
      await inRecordedRateLimitWait(o);
      // Held eagerly: claimed by the statement that created it (started when created), never fetched.
      const { rows: held } = await db.pool.query(
        `SELECT state, retry_count, started_on = created_on AS claimed_at_creation FROM pgboss.job WHERE name = 'effect-invite' AND data->>'paymentId' = $1`,
        [o.paymentId],
      );
      expect(held).toEqual([{ state: 'active', retry_count: 0, claimed_at_creation: true }]);
      await killAndResume(first, second, o, 'process-recovery (eager)');
    } finally {
      first.close();
      second.close();
    }
  }, 120_000);
});
