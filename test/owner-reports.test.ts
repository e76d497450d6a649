import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from './support/service.js';
import { ids, seedChannel, seedOrder } from './telegram-fixtures.js';

// The owner's reports: subscribers with their end dates, and money per period from the ledger —
// through the admin API and the CLI (same numbers), with ETH in wei as decimal strings (never a float).

const exec = promisify(execFile);
const ADMIN = 'owner-reports-admin-token-'.padEnd(32, 'x');
const DAY = 86_400_000;

let t: TestService;
let channel: string;
let other: string;
let buyers: { active: string; expired: string; removed: string };

beforeAll(async () => {
  t = await startTestService({ ADMIN_TOKEN: ADMIN }, { effects: [] });
  const c = ids();
  channel = c.openChannelId;
  await seedChannel(t.db, c);
  const o = ids();
  other = o.openChannelId;
  await seedChannel(t.db, o);

  const q = (sql: string, values: unknown[]) => t.db.pool.query(sql, values);
  buyers = { active: '7001', expired: '7002', removed: '7003' };
  const sub = async (buyer: string, expiresInMs: number, removed: boolean) =>
    (
      await q(
        `INSERT INTO subscriptions (buyer_telegram_id, open_channel_id, expires_at, removed_at)
         VALUES ($1, $2, now() + $3 * interval '1 millisecond', CASE WHEN $4 THEN now() END) RETURNING subscription_id::text AS id`,
        [buyer, channel, expiresInMs, removed],
      )
    ).rows[0].id as string;
  const active = await sub(buyers.active, 10 * DAY, false);
  await sub(buyers.expired, -DAY, false);
  await sub(buyers.removed, -2 * DAY, true);
  // Two paid orders granted on the active subscription.
  for (const n of [1, 2]) {
    const orderId = `${c.orderId}-${n}`;
    await seedOrder(t.db, { orderId, buyer: buyers.active, openChannelId: channel, planId: c.planId });
    await q(
      `INSERT INTO subscription_grants (order_id, subscription_id, payment_id, plan_id, duration_days, starts_at, expires_at) VALUES ($1, $2, $3, $4, 30, now(), now())`,
      [orderId, active, `pay-${n}`, c.planId],
    );
  }

  // The ledger, written with explicit booking times (the trigger allows inserts).
  const entry = (ch: string, account: string, kind: string, payment: string | null, payout: string | null, units: string, usd: string | null, at: string) =>
    q(
      `INSERT INTO ledger_entries (open_channel_id, account, kind, payment_id, payout_id, amount_units, usd_value, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [ch, account, kind, payment, payout, units, usd, at],
    );
  // Before the range: an open credit (the opening balance).
  await entry(channel, 'owner', 'payment_credit', 'p0', null, '1000000000000000', '3', '2025-12-20T10:00:00Z');
  await entry(channel, 'platform', 'platform_fee', 'p0', null, '100000000000000', '0.3', '2025-12-20T10:00:00Z');
  // January: one payment, paid out instantly in February.
  await entry(channel, 'owner', 'payment_credit', 'p1', 'payment:p1', '3000000000000000', '9', '2026-01-10T12:00:00Z');
  await entry(channel, 'platform', 'platform_fee', 'p1', null, '333333333333333', '1', '2026-01-10T12:00:00Z');
  // February: an accepted underpayment (5 of 9.99 arrived), still open; the January payout.
  await entry(channel, 'owner', 'payment_credit', 'p2', null, '1500000000000000', '4.5', '2026-02-03T08:00:00Z');
  await entry(channel, 'platform', 'platform_fee', 'p2', null, '166666666666666', '0.5', '2026-02-03T08:00:00Z');
  await entry(channel, 'owner', 'payout', null, 'payment:p1', '-3000000000000000', null, '2026-02-05T09:00:00Z');
  // March: a payment whose payout is under way (pending).
  await entry(channel, 'owner', 'payment_credit', 'p3', 'payment:p3', '666000000000000', '2', '2026-03-15T23:59:59.999Z');
  await entry(channel, 'platform', 'platform_fee', 'p3', null, '74000000000000', '0.2', '2026-03-15T23:59:59.999Z');
  // Another channel's money never shows here.
  await entry(other, 'owner', 'payment_credit', 'x1', null, '9000000000000000000', '27000', '2026-01-15T00:00:00Z');
  await entry(other, 'platform', 'platform_fee', 'x1', null, '1', '1', '2026-01-15T00:00:00Z');
});
afterAll(async () => {
  await t?.close();
});

const get = (url: string, token: string | null = ADMIN) =>
  t.service.app.inject({ method: 'GET', url, headers: token === null ? {} : { authorization: `Bearer ${token}` } });

async function cli(args: string[]) {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { env: { ...process.env, DATABASE_URL: t.db.url, LOG_LEVEL: 'silent' } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('GET /admin/channels/:id/subscribers', () => {
  it('lists subscribers with their end dates and status, active first, with counts', async () => {
    const res = await get(`/admin/channels/${channel}/subscribers`);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.counts).toEqual({ active: 1, expired: 1, removed: 1, total: 3 });
    expect(body.subscribers.map((s: { buyer_telegram_id: string; status: string }) => [s.buyer_telegram_id, s.status])).toEqual([
      [buyers.active, 'active'],
      [buyers.expired, 'expired'],
      [buyers.removed, 'removed'],
    ]);
    const active = body.subscribers[0];
    expect(active.paid_orders).toBe(2);
    expect(new Date(active.expires_at).getTime()).toBeGreaterThan(Date.now() + 9 * DAY);
    expect(body.subscribers[2].removed_at).toEqual(expect.any(String));
  });

  it('filters by status and pages', async () => {
    const expired = (await get(`/admin/channels/${channel}/subscribers?status=expired`)).json();
    expect(expired.subscribers.map((s: { buyer_telegram_id: string }) => s.buyer_telegram_id)).toEqual([buyers.expired]);
    const page = (await get(`/admin/channels/${channel}/subscribers?limit=1&offset=1`)).json();
    expect(page.subscribers.map((s: { buyer_telegram_id: string }) => s.buyer_telegram_id)).toEqual([buyers.expired]);
    expect((await get(`/admin/channels/${channel}/subscribers?status=gone`)).statusCode).toBe(400);
    expect((await get(`/admin/channels/-100777/subscribers`)).statusCode).toBe(404);
    expect((await get(`/admin/channels/${channel}/subscribers`, null)).statusCode).toBe(401);
  });
});

describe('GET /admin/channels/:id/report', () => {
  it('sums revenue, owner share, payouts and the balance owed per month, exactly', async () => {
    const res = await get(`/admin/channels/${channel}/report?period=month&from=2026-01-01&to=2026-04-01`);
    expect(res.statusCode).toBe(200);
    const r = res.json();
    expect(r).toMatchObject({ period: 'month', from: '2026-01-01T00:00:00.000Z', to: '2026-04-01T00:00:00.000Z', currency: 'eth' });
    expect(r.periods.map((p: { start: string; end: string }) => [p.start, p.end])).toEqual([
      ['2026-01-01T00:00:00.000Z', '2026-02-01T00:00:00.000Z'],
      ['2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z'],
      ['2026-03-01T00:00:00.000Z', '2026-04-01T00:00:00.000Z'],
    ]);
    expect(r.periods[0]).toMatchObject({
      payments: 1, revenue_usd: '10', owner_share_usd: '9', owner_share_units: '3000000000000000', owner_share_eth: '0.003',
      platform_fee_usd: '1', platform_fee_units: '333333333333333', payouts: 0, paid_out_units: '0', paid_out_usd: '0',
      balance_units: '4000000000000000', balance_eth: '0.004',
    });
    expect(r.periods[1]).toMatchObject({
      payments: 1, revenue_usd: '5', owner_share_usd: '4.5', owner_share_units: '1500000000000000',
      payouts: 1, paid_out_units: '3000000000000000', paid_out_eth: '0.003', paid_out_usd: '9', balance_units: '2500000000000000',
    });
    // The last millisecond of the 15th is still March; the balance includes the payout under way.
    expect(r.periods[2]).toMatchObject({ payments: 1, revenue_usd: '2.2', owner_share_eth: '0.000666', balance_units: '3166000000000000', balance_eth: '0.003166' });
    expect(r.totals).toMatchObject({
      payments: 3, revenue_usd: '17.2', owner_share_usd: '15.5', owner_share_units: '5166000000000000', owner_share_eth: '0.005166',
      platform_fee_usd: '1.7', platform_fee_units: '573999999999999', payouts: 1, paid_out_units: '3000000000000000', paid_out_usd: '9',
    });
    expect(r.balance).toMatchObject({
      owed_units: '3166000000000000', owed_eth: '0.003166', open_units: '2500000000000000', open_usd: '7.5', pending_units: '666000000000000', pending_eth: '0.000666',
    });
    // Wei travel as strings in the raw JSON: a client's JSON.parse keeps every digit.
    expect(res.body).toContain('"platform_fee_units":"573999999999999"');
  });

  it('weeks start on Monday (UTC); days cut at midnight UTC; a partial first period starts at from', async () => {
    const weeks = (await get(`/admin/channels/${channel}/report?period=week&from=2026-01-05&to=2026-01-19`)).json();
    expect(weeks.periods.map((p: { start: string; payments: number }) => [p.start.slice(0, 10), p.payments])).toEqual([
      ['2026-01-05', 1],
      ['2026-01-12', 0],
    ]);
    const days = (await get(`/admin/channels/${channel}/report?period=day&from=2026-02-03&to=2026-02-06`)).json();
    expect(days.periods.map((p: { start: string; payments: number; payouts: number }) => [p.start.slice(0, 10), p.payments, p.payouts])).toEqual([
      ['2026-02-03', 1, 0],
      ['2026-02-04', 0, 0],
      ['2026-02-05', 0, 1],
    ]);
    const partial = (await get(`/admin/channels/${channel}/report?period=month&from=2026-01-15T00:00:00Z&to=2026-02-10`)).json();
    expect(partial.periods.map((p: { start: string; end: string; payments: number }) => [p.start, p.end, p.payments])).toEqual([
      ['2026-01-15T00:00:00.000Z', '2026-02-01T00:00:00.000Z', 0],
      ['2026-02-01T00:00:00.000Z', '2026-02-10T00:00:00.000Z', 1],
    ]);
    // January's credit is before the range: it is in the opening balance.
    expect(partial.periods[0].balance_units).toBe('4000000000000000');
  });

  it('defaults to the last 12 months up to now', async () => {
    const r = (await get(`/admin/channels/${channel}/report`)).json();
    expect(r.period).toBe('month');
    expect(r.periods).toHaveLength(12);
    expect(r.periods[0].start).toMatch(/-01T00:00:00.000Z$/);
    expect(new Date(r.periods.at(-1).end).getTime()).toBeLessThanOrEqual(Date.now());
  });

  it('refuses a bad range or period with 400 naming the field; an unknown channel with 404', async () => {
    for (const [query, field] of [
      ['period=year', 'period'],
      ['from=2026-02-30', 'from'],
      ['from=yesterday', 'from'],
      ['from=2026-03-01&to=2026-02-01', 'from'],
      ['period=day&from=2020-01-01&to=2026-01-01', 'from'],
    ]) {
      const res = await get(`/admin/channels/${channel}/report?${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(res.json().message).toContain(field);
    }
    expect((await get(`/admin/channels/-100777/report`)).statusCode).toBe(404);
  });
});

describe('npm run -s cli -- owner', () => {
  it('prints the same subscribers and report as the admin API', async () => {
    const subs = await cli(['owner', 'subscribers', channel]);
    expect(subs.code).toBe(0);
    const api = (await get(`/admin/channels/${channel}/subscribers`)).json();
    expect({ ...JSON.parse(subs.stdout), as_of: null }).toEqual({ ...api, as_of: null });

    const report = await cli(['owner', 'report', channel, '--period', 'month', '--from', '2026-01-01', '--to', '2026-04-01']);
    expect(report.code).toBe(0);
    const apiReport = (await get(`/admin/channels/${channel}/report?period=month&from=2026-01-01&to=2026-04-01`)).json();
    const strip = (r: { balance: object }) => ({ ...r, balance: { ...r.balance, as_of: null } });
    expect(strip(JSON.parse(report.stdout))).toEqual(strip(apiReport));

    const active = await cli(['owner', 'subscribers', channel, '--status', 'active']);
    expect(JSON.parse(active.stdout).subscribers).toHaveLength(1);
  });

  it('names a bad option (exit 1) and prints usage for an unknown command (exit 2)', async () => {
    const bad = await cli(['owner', 'report', channel, '--period', 'year']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('period');
    const unknown = await cli(['owner', 'frobnicate', channel]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('owner report <open_channel_id>');
  });
});

describe('the owner routes under arbitrary input', () => {
  it('never answer 5xx (seeded fast-check)', async () => {
    const fc = await import('fast-check');
    const text = fc.oneof(fc.string(), fc.constantFrom('2026-01-01', '2026-02-30', '0001-01-01', '9999-12-31', '2026-01-01T00:00:00Z', '-1', '1e3', '99999999999', ''));
    const query = fc.record({ period: text, from: text, to: text, status: text, limit: text, offset: text, buyer: text }, { requiredKeys: [] }).map(
      (q) => new URLSearchParams(Object.entries(q).filter((e): e is [string, string] => e[1] !== undefined)).toString(),
    );
    const segment = fc.oneof(fc.constant(channel), fc.constant('-100777'), fc.string().map(encodeURIComponent));
    const body = fc.record({ action: fc.oneof(fc.constantFrom('grant', 'extend', 'revoke'), fc.string()), duration: fc.oneof(text, fc.constantFrom('1d', '0s', '3650d', '3651d')), by: fc.string(), reason: fc.string() }, { requiredKeys: [] });
    const request = fc.oneof(
      fc.tuple(segment, query).map(([s, q]) => ({ method: 'GET' as const, url: `/admin/channels/${s}/report?${q}` })),
      fc.tuple(segment, query).map(([s, q]) => ({ method: 'GET' as const, url: `/admin/channels/${s}/subscribers?${q}` })),
      fc.tuple(segment, query).map(([s, q]) => ({ method: 'GET' as const, url: `/admin/channels/${s}/adjustments?${q}` })),
      segment.map((s) => ({ method: 'GET' as const, url: `/admin/channels/${s}/texts` })),
      fc.tuple(segment, fc.oneof(fc.constant('7001'), fc.string().map(encodeURIComponent)), body).map(([s, b, payload]) => ({ method: 'POST' as const, url: `/admin/channels/${s}/subscribers/${b}`, payload })),
    );
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const res = await t.service.app.inject({ ...r, headers: { authorization: `Bearer ${ADMIN}` } });
        expect(res.statusCode, `${r.method} ${r.url} ${res.body}`).toBeLessThan(500);
      }),
      { seed: 14, numRuns: 300 },
    );
  }, 60_000);
});
