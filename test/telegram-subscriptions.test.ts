import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { grantPeriod } from '../src/domain/subscription.js';
import { EXPIRY_QUEUE, REMINDER_QUEUE, grantAndSchedule } from '../src/telegram/subscriptions.service.js';
import { callsTo, paidOrderFixture, payAndRoute, seedOrder, startTelegramTest, waitForAccess, type TelegramTest } from './telegram-fixtures.js';
import type { TestDatabase } from './support/database.js';

// Subscriptions through the running service: grants keyed on the order, renewals extending from the
// current expiry, and expiry jobs that decide at execution time.

async function subscriptionOf(db: TestDatabase, buyer: string, openChannelId: string) {
  const { rows } = await db.pool.query(
    `SELECT subscription_id::text AS id, expires_at, removed_at, removal_dry_run_at FROM subscriptions WHERE buyer_telegram_id = $1 AND open_channel_id = $2`,
    [buyer, openChannelId],
  );
  return rows[0] as { id: string; expires_at: Date; removed_at: Date | null; removal_dry_run_at: Date | null };
}

/** Runs a queue's job now (as if its startAfter had come) and waits until pg-boss completed it. */
async function runJob(t: TelegramTest, queue: string, data: object) {
  const id = await t.svc.service.boss.send(queue, data);
  await vi.waitFor(
    async () => {
      const { rows } = await t.svc.db.pool.query('SELECT state FROM pgboss.job WHERE id = $1', [id]);
      expect(rows[0]?.state).toBe('completed');
    },
    { timeout: 15_000, interval: 50 },
  );
}

/** A buyer who paid, got the invite and joined the closed channel through it. */
async function member(t: TelegramTest) {
  const o = await paidOrderFixture(t.svc.db, { durationDays: 30 });
  await payAndRoute(t.svc.service.engine, o.paymentId, o);
  const access = await waitForAccess(t.svc.db, o.paymentId, ['invited']);
  t.tg.simulateJoin(Number(o.closedChannelId), Number(o.buyer), access.link!);
  expect(t.tg.members.get(Number(o.closedChannelId))?.has(Number(o.buyer))).toBe(true);
  return o;
}

async function expireNow(db: TestDatabase, subscriptionId: string) {
  await db.pool.query(`UPDATE subscriptions SET expires_at = date_trunc('milliseconds', now() - interval '1 second') WHERE subscription_id = $1`, [subscriptionId]);
}

describe('subscriptions', () => {
  let t: TelegramTest;
  beforeAll(async () => {
    t = await startTelegramTest();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('a grant is once per order: replaying it (or a second payment for the order) never extends twice', async () => {
    const o = await paidOrderFixture(t.svc.db, { durationDays: 30 });
    const deps = { pool: t.svc.db.pool, boss: t.svc.service.boss, remindersMs: [] };
    const input = { orderId: o.orderId, paymentId: o.paymentId, buyerTelegramId: o.buyer, openChannelId: o.openChannelId, planId: o.planId, durationDays: 30 };
    const grants = await Promise.all(Array.from({ length: 10 }, (_, i) => grantAndSchedule(deps, { ...input, paymentId: `${o.paymentId}${i}` })));
    expect(grants.filter((g) => g.fresh)).toHaveLength(1);
    expect(new Set(grants.map((g) => g.expiresAt.getTime())).size).toBe(1);
    const sub = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    expect(sub.expires_at.getTime()).toBe(grants[0]!.expiresAt.getTime());
    expect(sub.expires_at.getTime() - Date.now()).toBeLessThanOrEqual(30 * 86_400_000);
  });

  it('stored periods are grantPeriod on the expiry read under the lock and the database clock', async () => {
    const o = await paidOrderFixture(t.svc.db, { durationDays: 30 });
    const deps = { pool: t.svc.db.pool, boss: t.svc.service.boss, remindersMs: [] };
    const input = { orderId: o.orderId, paymentId: o.paymentId, buyerTelegramId: o.buyer, openChannelId: o.openChannelId, planId: o.planId, durationDays: 30 };
    const dbNow = async () => (await t.svc.db.pool.query<{ now: Date }>(`SELECT date_trunc('milliseconds', clock_timestamp()) AS now`)).rows[0]!.now;
    const grantFor = async (suffix: string, durationDays: number) => {
      const order = { ...o, orderId: `${o.orderId}-${suffix}` };
      await seedOrder(t.svc.db, order);
      return grantAndSchedule(deps, { ...input, orderId: order.orderId, durationDays });
    };

    const before = await dbNow();
    const first = await grantAndSchedule(deps, input);
    expect(first.startsAt.getTime()).toBeGreaterThanOrEqual(before.getTime());
    expect(first).toMatchObject(grantPeriod({ currentExpiresAt: null, now: first.startsAt, durationDays: 30 }));

    // Still running: extends from the current expiry, whatever the clock says.
    const renewed = await grantFor('r1', 7);
    expect(renewed).toMatchObject(grantPeriod({ currentExpiresAt: first.expiresAt, now: new Date(0), durationDays: 7 }));

    // Lapsed: restarts at the database's now.
    await expireNow(t.svc.db, first.subscriptionId);
    const lapsedAt = (await subscriptionOf(t.svc.db, o.buyer, o.openChannelId)).expires_at;
    const lapsedBefore = await dbNow();
    const restarted = await grantFor('r2', 30);
    expect(restarted.startsAt.getTime()).toBeGreaterThanOrEqual(lapsedBefore.getTime());
    expect(restarted).toMatchObject(grantPeriod({ currentExpiresAt: lapsedAt, now: restarted.startsAt, durationDays: 30 }));
    expect((await subscriptionOf(t.svc.db, o.buyer, o.openChannelId)).expires_at).toEqual(restarted.expiresAt);
  });

  it('a renewal extends from the current expiry, not from now', async () => {
    const o = await member(t);
    const first = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    const renewal = { ...o, orderId: `${o.orderId}-renewal`, paymentId: `${o.paymentId}9` };
    await seedOrder(t.svc.db, renewal);
    await payAndRoute(t.svc.service.engine, renewal.paymentId, renewal);
    await waitForAccess(t.svc.db, renewal.paymentId, ['invited']);
    const renewed = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    expect(renewed.id).toBe(first.id);
    expect(renewed.expires_at.getTime() - first.expires_at.getTime()).toBe(30 * 86_400_000);
  });

  it('at expiry the member is removed (ban, then unban only_if_banned) and told so', async () => {
    const o = await member(t);
    const sub = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    await expireNow(t.svc.db, sub.id);
    await runJob(t, EXPIRY_QUEUE, { subscriptionId: sub.id, expiresAt: sub.expires_at.toISOString() });

    const chat = Number(o.closedChannelId);
    expect(t.tg.members.get(chat)?.has(Number(o.buyer))).toBe(false);
    expect(t.tg.banned.get(chat)?.has(Number(o.buyer)) ?? false).toBe(false); // can come back after renewing
    expect(callsTo(t.tg, 'banChatMember', chat)).toHaveLength(1);
    expect(callsTo(t.tg, 'unbanChatMember', chat)[0]?.body).toMatchObject({ only_if_banned: true });
    expect((await subscriptionOf(t.svc.db, o.buyer, o.openChannelId)).removed_at).toBeInstanceOf(Date);
    const told = callsTo(t.tg, 'sendMessage', o.buyer).at(-1);
    expect(told?.body.text).toMatch(/has ended/);

    // A replay of the job removes nobody twice.
    await runJob(t, EXPIRY_QUEUE, { subscriptionId: sub.id, expiresAt: sub.expires_at.toISOString() });
    expect(callsTo(t.tg, 'banChatMember', chat)).toHaveLength(1);
  });

  it('a member who renewed a second before the expiry job ran is not removed', async () => {
    const o = await member(t);
    const sub = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    await expireNow(t.svc.db, sub.id);
    const lapsed = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);

    const renewal = { ...o, orderId: `${o.orderId}-renewal`, paymentId: `${o.paymentId}7` };
    await seedOrder(t.svc.db, renewal);
    await payAndRoute(t.svc.service.engine, renewal.paymentId, renewal);
    await waitForAccess(t.svc.db, renewal.paymentId, ['invited']);

    // The job scheduled for the old expiry runs now; the renewal committed just before it.
    await runJob(t, EXPIRY_QUEUE, { subscriptionId: sub.id, expiresAt: lapsed.expires_at.toISOString() });
    expect(t.tg.members.get(Number(o.closedChannelId))?.has(Number(o.buyer))).toBe(true);
    expect(callsTo(t.tg, 'banChatMember', Number(o.closedChannelId), false)).toHaveLength(0);
    const after = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    expect(after.removed_at).toBeNull();
    // A lapsed subscription restarts from the renewal, not from the missed expiry.
    expect(after.expires_at.getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);
  });

  it('a reminder goes out with a renewal button; one for an expiry that a renewal moved is skipped', async () => {
    const o = await member(t);
    const sub = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    const before = callsTo(t.tg, 'sendMessage', o.buyer).length;
    await runJob(t, REMINDER_QUEUE, { subscriptionId: sub.id, expiresAt: sub.expires_at.toISOString(), beforeMs: 86_400_000 });
    const reminder = callsTo(t.tg, 'sendMessage', o.buyer)[before];
    expect(reminder?.body.text).toMatch(/ends on/);
    expect(JSON.stringify(reminder?.body.reply_markup)).toContain(`plans:${o.openChannelId}`);

    await runJob(t, REMINDER_QUEUE, { subscriptionId: sub.id, expiresAt: new Date(sub.expires_at.getTime() - 1000).toISOString(), beforeMs: 86_400_000 });
    expect(callsTo(t.tg, 'sendMessage', o.buyer)).toHaveLength(before + 1);
  });
});

describe('subscriptions, removal dry run', () => {
  let t: TelegramTest;
  beforeAll(async () => {
    t = await startTelegramTest({ SUBSCRIPTION_REMOVAL_DRY_RUN: 'true' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('an expired member is logged, not removed', async () => {
    const o = await member(t);
    const sub = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    await expireNow(t.svc.db, sub.id);
    await runJob(t, EXPIRY_QUEUE, { subscriptionId: sub.id, expiresAt: sub.expires_at.toISOString() });
    expect(t.tg.members.get(Number(o.closedChannelId))?.has(Number(o.buyer))).toBe(true);
    expect(t.tg.callsOf('banChatMember')).toHaveLength(0);
    expect(t.tg.callsOf('unbanChatMember')).toHaveLength(0);
    const after = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    expect(after.removed_at).toBeNull();
    expect(after.removal_dry_run_at).toBeInstanceOf(Date);
  });
});
