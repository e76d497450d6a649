import { describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { queueOf } from '../src/persistence/queues.js';
import { startService } from '../src/service.js';
import { checkBooks } from '../src/payouts/books.js';
import { createTestDatabase } from './support/database.js';
import { notRun } from './support/intake.js';
import { payAndRoute, seedPayoutChannel } from './support/payouts.js';
import type { TestService } from './support/service.js';

// Databases that ran the version without payout actors hold split/accumulate jobs nothing ever worked
// (one per routed payment). When a version with the actors starts on such a database, those jobs are
// worked like new ones, and nothing is paid twice.

describe('the payout backlog', () => {
  it('jobs queued while no payout actor ran are worked once the actors start, each payment paid once', async () => {
    const db = await createTestDatabase();
    const config = loadConfig({ NODE_ENV: 'test', PORT: '0', LOG_LEVEL: (process.env.TEST_LOG_LEVEL ?? 'silent') as string, DATABASE_URL: db.url, JOB_RETRY_DELAY: '1s', JOB_RETRY_DELAY_MAX: '2s' });
    const log = createLogger(config.LOG_LEVEL);
    // The old version: nothing works the payout queues (and the threshold credit was a job then).
    const old = await startService(config, log, { effects: [], actors: { accumulate: notRun('accumulate') } });
    const asTest = (service: typeof old) => ({ service, db, config, url: '', close: async () => {} }) as unknown as TestService;
    let paymentIds: string[];
    try {
      const instant = await seedPayoutChannel(asTest(old), { strategy: 'instant', currency: 'eth' });
      const threshold = await seedPayoutChannel(asTest(old), { strategy: 'threshold', currency: 'eth', thresholdUsd: '15' });
      paymentIds = [await payAndRoute(asTest(old), instant), await payAndRoute(asTest(old), threshold), await payAndRoute(asTest(old), threshold)];
      const queued = await db.pool.query(`SELECT name, state FROM pgboss.job WHERE name = ANY($1) AND state = 'created'`, [[queueOf('split'), queueOf('accumulate')]]);
      expect(queued.rows.map((r) => r.name).sort()).toEqual([queueOf('accumulate'), queueOf('accumulate'), queueOf('split')]);
    } finally {
      await old.close();
    }
    // The new version on the same database.
    const current = await startService(config, log, { effects: ['split', 'settle', 'accumulate'] });
    try {
      await vi.waitFor(
        async () => {
          const { rows } = await db.pool.query<{ payout: string | null }>(`SELECT state_value->'routed'->>'payout' AS payout FROM payments WHERE payment_id = ANY($1)`, [paymentIds]);
          expect(rows.map((r) => r.payout)).toEqual(['done', 'done', 'done']);
        },
        { timeout: 30_000, interval: 100 },
      );
      const credits = await db.pool.query(`SELECT payment_id, count(*)::int AS n FROM ledger_entries WHERE payment_id = ANY($1) AND kind = 'payment_credit' GROUP BY payment_id`, [paymentIds]);
      expect(credits.rows.every((r) => r.n === 1)).toBe(true);
      expect((await db.pool.query(`SELECT count(*)::int AS n FROM payouts WHERE status = 'settled'`)).rows[0].n).toBe(2); // the instant payout and one batch of two
      expect((await checkBooks(db.pool)).balanced).toBe(true);
    } finally {
      await current.close();
      await db.drop();
    }
  }, 60_000);
});
