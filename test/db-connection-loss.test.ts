import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/config.js';
import { buildApp } from '../src/http/app.js';
import { createIpnService } from '../src/intake/ipn.service.js';
import { signIpn } from '../src/nowpayments/signature.js';
import { createOrderService } from '../src/orders/order.service.js';
import { createEngine } from '../src/persistence/apply-event.js';
import { createPool, isDatabaseUnavailable } from '../src/persistence/database.js';
import { inTransaction } from '../src/persistence/transaction.js';
import { startTestEngine, type TestEngine } from './support/engine.js';

// Postgres dropping a connection while a client is checked out (a transaction in flight) must fail that
// call, not the process: before, the client's 'error' event had no listener and became an uncaught
// exception. While the database is unreachable, HTTP answers 503 (retry later), not 500.

let t: TestEngine;
const uncaught = vi.fn();
const onUncaught = (error: unknown) => uncaught(error);

beforeAll(async () => {
  t = await startTestEngine();
  process.on('uncaughtException', onUncaught);
});
afterAll(async () => {
  process.off('uncaughtException', onUncaught);
  await t.close();
});
afterEach(() => {
  expect(uncaught).not.toHaveBeenCalled();
});

/** Terminates every other `telepay` backend of this test database (the brief's outage), once one is busy in pg_sleep. */
async function terminateWhenSleeping(admin: pg.Pool): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await admin.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event = 'PgSleep'`,
    );
    if (Number(rows[0]!.n) > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const { rowCount } = await admin.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'telepay' AND datname = current_database() AND pid <> pg_backend_pid()`,
  );
  return rowCount ?? 0;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

describe('a connection dropped mid-transaction', () => {
  for (const kind of ['createPool (listener on every client)', 'a bare pg.Pool (inTransaction listens while checked out)'] as const) {
    it(`inTransaction on ${kind}: the call rejects, the process lives, the next call succeeds`, async () => {
      const pool = kind.startsWith('createPool') ? createPool(t.db.url, 4) : new pg.Pool({ connectionString: t.db.url, max: 4, application_name: 'telepay' });
      pool.on('error', () => {}); // the bare pool's idle errors, as createPool does
      const admin = new pg.Pool({ connectionString: t.db.url, max: 1, application_name: 'telepay-test-admin' });
      try {
        const call = inTransaction(pool, async (client) => {
          await client.query('CREATE TEMP TABLE IF NOT EXISTS scratch (x int)');
          await client.query('SELECT pg_sleep(30)');
        });
        const outcome = call.then(() => 'resolved', (error: unknown) => error);
        expect(await terminateWhenSleeping(admin)).toBeGreaterThan(0);
        const error = await outcome;
        expect(error).toBeInstanceOf(Error);
        expect(isDatabaseUnavailable(error)).toBe(true);
        await settle();
        expect(uncaught).not.toHaveBeenCalled();
        // The pool discarded the dead client; the next transaction gets a fresh connection.
        expect(await inTransaction(pool, async (client) => (await client.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one)).toBe(1);
      } finally {
        await admin.end();
        await pool.end();
      }
    });
  }

  it('applyEvent writing a state change with its jobs (writeWithJobs): the event fails, the process lives, a retry applies it once', async () => {
    const pool = createPool(t.db.url, 4);
    const engine = createEngine({ pool });
    const admin = new pg.Pool({ connectionString: t.db.url, max: 1, application_name: 'telepay-test-admin' });
    const paymentId = `conn-loss-${Date.now()}`;
    await admin.query(`
      CREATE FUNCTION slow_journal() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.payment_id = '${paymentId}' AND NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'slow_journal_done') THEN
          PERFORM pg_sleep(30);
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER slow_journal BEFORE INSERT ON payment_journal FOR EACH ROW EXECUTE FUNCTION slow_journal();`);
    const event = { type: 'np.finished', facts: { orderId: 'o-conn', actuallyPaid: '10', payAmount: '10', payCurrency: 'usdttrc20' } } as never;
    try {
      const outcome = engine.applyEvent(paymentId, event, { source: 'test' }).then(() => 'resolved', (error: unknown) => error);
      expect(await terminateWhenSleeping(admin)).toBeGreaterThan(0);
      expect(await outcome).toBeInstanceOf(Error);
      await settle();
      expect(uncaught).not.toHaveBeenCalled();
      expect((await admin.query('SELECT 1 FROM payments WHERE payment_id = $1', [paymentId])).rowCount).toBe(0); // nothing half-written
      await admin.query('CREATE TABLE slow_journal_done ()');
      expect(await engine.applyEvent(paymentId, event, { source: 'test' })).toMatchObject({ outcome: 'applied', version: 1 });
      expect((await admin.query('SELECT 1 FROM payment_journal WHERE payment_id = $1', [paymentId])).rowCount).toBe(1);
    } finally {
      await admin.query('DROP TRIGGER IF EXISTS slow_journal ON payment_journal; DROP TABLE IF EXISTS slow_journal_done');
      await admin.end();
      await pool.end();
    }
  });
});

describe('the database unreachable', () => {
  it('HTTP answers 503 with Retry-After (status reads, signed IPNs), never 500; nothing crashes', async () => {
    // A port nothing listens on: every checkout is refused.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const pool = createPool(`postgres://postgres@127.0.0.1:${port}/nowhere`, 2);
    const ipnSecret = 'ipn-secret-for-the-outage-test';
    const app = await buildApp({
      config: loadConfig({}),
      pool,
      boss: t.boss,
      engine: createEngine({ pool }),
      log: t.log,
      statusTokenSecret: 'z'.repeat(32),
      ipn: createIpnService({ pool, engine: createEngine({ pool }), log: t.log }),
      ipnSecret,
      orders: createOrderService({ pool, nowPayments: null, statusTokenSecret: 'z'.repeat(32), publicBaseUrl: () => 'http://127.0.0.1', log: t.log }),
    });
    try {
      const status = await app.inject({ url: '/api/payment-status?order_id=o1' });
      expect(status.statusCode).toBe(503);
      expect(status.headers['retry-after']).toBe('5');
      expect(status.json().message).toMatch(/database is unreachable/);
      const body = { payment_id: 77, payment_status: 'finished', order_id: 'o1' };
      const ipn = await app.inject({ method: 'POST', url: '/webhooks/nowpayments', payload: body, headers: { 'x-nowpayments-sig': signIpn(body, ipnSecret) } });
      expect(ipn.statusCode).toBe(503); // not stored: NowPayments must retry, and will get a 200 once we are back
      expect((await app.inject({ url: '/health/ready' })).statusCode).toBe(503);
    } finally {
      await app.close();
      await pool.end();
    }
  });
});
