import { randomBytes } from 'node:crypto';
import pg from 'pg';
import Postgrator from 'postgrator';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { migrate, MIGRATIONS_DIR } from '../src/persistence/migrate.js';
import { createScratchDatabase, type ScratchDatabase } from '../src/persistence/scratch-postgres.js';

// Migration 010 on a database that already holds channels, plans and orders (written under 009, when
// plan ids were global): the rows stay as they are, and from then on two channels may share a plan id
// while an order can only reference a plan of its own channel.

let scratch: ScratchDatabase;
let client: pg.Client;
beforeAll(async () => {
  scratch = await createScratchDatabase(inject('adminUrl'), `telepay_m010_${randomBytes(5).toString('hex')}`);
  client = new pg.Client({ connectionString: scratch.url });
  await client.connect();
});
afterAll(async () => {
  await client?.end();
  await scratch?.drop();
});

const channel = (id: number) =>
  client.query(
    `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network, payout_strategy)
     VALUES ($1, $2, 'c', '0x0000000000000000000000000000000000000001', 'eth', 'eth', 'instant')`,
    [id, id - 1000],
  );

describe('migration 010: plans keyed by channel and id', () => {
  it('keeps existing plans and orders, then lets two channels share a plan id and ties an order to its own channel\'s plan', async () => {
    const postgrator = new Postgrator({ migrationPattern: `${MIGRATIONS_DIR}/*.sql`, driver: 'pg', schemaTable: 'schema_migrations', execQuery: (q) => client.query(q) });
    await postgrator.migrate('009');
    await channel(-1001);
    await channel(-1002);
    await client.query(`INSERT INTO plans (plan_id, open_channel_id, title, price_usd, duration_days) VALUES ('month', -1001, 'm', 9.99, 30), ('month-1002', -1002, 'm', 9.99, 30)`);
    await client.query(`INSERT INTO orders (order_id, buyer_telegram_id, open_channel_id, plan_id, price_usd, source) VALUES ('o1', 1, -1001, 'month', 9.99, 'api'), ('o2', 1, -1002, NULL, 5, 'legacy-ipn')`);

    const pool = new pg.Pool({ connectionString: scratch.url, max: 2 });
    try {
      expect((await migrate(pool)).some((file) => file.endsWith('010.do.plans-per-channel.sql'))).toBe(true);
    } finally {
      await pool.end();
    }

    expect((await client.query('SELECT order_id, open_channel_id::text, plan_id FROM orders ORDER BY order_id')).rows).toEqual([
      { order_id: 'o1', open_channel_id: '-1001', plan_id: 'month' },
      { order_id: 'o2', open_channel_id: '-1002', plan_id: null },
    ]);
    // The second channel may now sell "month" too.
    await client.query(`INSERT INTO plans (plan_id, open_channel_id, title, price_usd, duration_days) VALUES ('month', -1002, 'm2', 15, 30)`);
    await client.query(`INSERT INTO orders (order_id, buyer_telegram_id, open_channel_id, plan_id, price_usd, source) VALUES ('o3', 1, -1002, 'month', 15, 'bot')`);
    // Twice in one channel is still refused.
    await expect(client.query(`INSERT INTO plans (plan_id, open_channel_id, title, price_usd, duration_days) VALUES ('month', -1001, 'again', 1, 1)`)).rejects.toMatchObject({ constraint: 'plans_pkey' });
    // An order cannot point at another channel's plan.
    await expect(
      client.query(`INSERT INTO orders (order_id, buyer_telegram_id, open_channel_id, plan_id, price_usd, source) VALUES ('o4', 1, -1001, 'month-1002', 9.99, 'api')`),
    ).rejects.toMatchObject({ constraint: 'orders_plan_fkey' });
  });
});
