import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScaleOut, summary } from '../scripts/scale-out.js';
import { loadConfig } from '../src/config.js';
import { startupProblems } from '../src/runtime.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

// Scale-out (docs/deploy.md), the short run of scripts/scale-out.ts (`npm run scaleout` is the long one):
// three instances of `src/main.ts` as child processes — ROLE=web, ROLE=all and ROLE=worker — started at
// the same moment on one EMPTY database (they migrate it together), sharing a fake NowPayments, a fake
// Bot API and a local chain. 20 orders through the web instances, then every IPN (waiting, confirming,
// finished) twice to both webhooks, shuffled and concurrent; the worker is SIGKILLed while a DM it asked
// for is in flight (Telegram delivers it, the worker never hears) and a replacement starts. Checked: one
// payment, one link and one DM per order (the killed worker's in-flight DM may end "delivery
// unconfirmed": 0 or 1 DM, never 2), contiguous journals with no event applied twice, one owner credit
// per payment, no job left, no Bot API call from the web instance, clean SIGTERM everywhere.
// About 30-45 s on two busy cores (a dead worker's jobs resume after JOB_HEARTBEAT, 10 s).

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
});
afterAll(async () => {
  await db?.drop();
});

describe('scale-out', () => {
  it('ROLE=web and ROLE=worker refuse the embedded Postgres and the in-process sandbox fakes, naming what to set', () => {
    const messages = (env: Record<string, string>) => startupProblems(loadConfig(env)).map((p) => p.message);
    expect(messages({ ROLE: 'all' })).toEqual([]);
    const worker = messages({ ROLE: 'worker' });
    expect(worker).toHaveLength(2);
    expect(worker[0]).toMatch(/^ROLE=worker needs DATABASE_URL/);
    expect(worker[1]).toMatch(/^ROLE=worker cannot use the in-process sandbox fakes .*NOWPAYMENTS_API_KEY and NOWPAYMENTS_IPN_SECRET; TELEGRAM_BOT_TOKEN; CHANGENOW_API_KEY, ETH_RPC_URL and HOST_WALLET_PRIVATE_KEY/);
    const shared = {
      DATABASE_URL: 'postgres://db.internal/telepay',
      NOWPAYMENTS_API_KEY: 'key',
      NOWPAYMENTS_IPN_SECRET: 'secret',
      TELEGRAM_BOT_TOKEN: '1:token',
      CHANGENOW_API_KEY: 'cn',
      ETH_RPC_URL: 'http://eth.internal:8545',
      HOST_WALLET_PRIVATE_KEY: `0x${'1'.repeat(64)}`,
    };
    expect(messages({ ROLE: 'web', ...shared })).toEqual([]);
    expect(messages({ ROLE: 'web', ...shared, TELEGRAM_BOT_TOKEN: '' })).toEqual([expect.stringMatching(/^ROLE=web cannot use the in-process sandbox fakes .*: set TELEGRAM_BOT_TOKEN \(/)]);
  });

  it('web + all + worker on one Postgres: a replay storm to every webhook and a killed worker keep one link and one DM per order', async () => {
    const report = await runScaleOut({
      databaseUrl: db.url,
      roles: ['web', 'all', 'worker'],
      orders: 20,
      repeats: 2,
      kills: 1,
      seed: Number(process.env.SCALEOUT_SEED ?? 20_260_109),
      concurrency: 12,
      settleTimeoutMs: 60_000,
      poolMax: 4,
    });
    process.stdout.write(`${summary(report)}\n`);
    expect(report.violations).toEqual([]);
    expect(report.kills).toBe(1);
    expect(report.outcomes.invited + report.outcomes.unconfirmed).toBe(20);
    expect(report.dms.maxPerBuyer).toBeLessThanOrEqual(1);
    await rm(report.logDir, { recursive: true, force: true }); // kept only when the run failed
  }, 150_000);
});
