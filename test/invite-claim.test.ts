import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createInviteActor } from '../src/actors/telegram/invite.actor.js';
import type { EffectActor, EffectContext } from '../src/actors/effect-actor.js';
import { PermanentFailure } from '../src/domain/errors.js';
import { startFakeTelegram, type FakeTelegram } from '../src/sandbox/telegram.fake.js';
import { createTelegramBot } from '../src/telegram/client.js';
import { claimInvite } from '../src/telegram/invite-claim.repo.js';
import { grantAndScheduleIn, subscriptionQueues } from '../src/telegram/subscriptions.service.js';
import { startTestEngine, type TestEngine } from './support/engine.js';
import type { Route } from '../src/machines/payment.events.js';
import { finished, ids, inviteRow, paidOrderFixture, payAndRoute, routeOf, seedOrder, TOKEN } from './telegram-fixtures.js';

// The invite actor's first transaction (src/telegram/invite-claim.repo.ts): the route/channel/plan read
// with the subscription's lock in one statement, the grant with the invite's claim in the next. What
// was four statements must still grant, renew, refuse and take turns exactly as before.

const DAY = 86_400_000;
const REMINDERS = [3 * DAY, DAY];

let e: TestEngine;
let tg: FakeTelegram;
let actor: EffectActor;

beforeAll(async () => {
  e = await startTestEngine();
  for (const [name, queue] of Object.entries(subscriptionQueues)) await e.boss.createQueue(name, queue);
  tg = await startFakeTelegram({ token: TOKEN });
  const bot = createTelegramBot({ token: TOKEN, apiRoot: tg.apiRoot, timeoutMs: 5_000, botInfo: tg.botInfo });
  actor = createInviteActor({ pool: e.db.pool, boss: e.boss, api: bot.api, log: e.log, inviteExpireAfterMs: 86_400_000, leaseMs: 300_000, remindersMs: REMINDERS });
});
afterAll(async () => {
  await e?.close();
  await tg?.close();
});

const context = (jobId: string): EffectContext => ({ signal: new AbortController().signal, log: e.log, jobId, retryCount: 0 });
const job = (paymentId: string) => ({ paymentId, effect: 'invite' as const, attempt: 0 });

interface Buyer {
  buyer: string;
  openChannelId: string;
  planId: string;
}

/** Another paid and routed order of the same buyer, channel and plan. */
async function anotherOrder(o: Buyer) {
  const { orderId, paymentId } = ids();
  const next = { ...o, orderId, paymentId };
  await seedOrder(e.db, next);
  await payAndRoute(e.engine, paymentId, next);
  return next;
}

/** Paid, and routed (as the route actor would) to a channel or plan other than the order's. */
async function paidAndRoutedTo(o: Buyer & { orderId: string; paymentId: string }, changes: Partial<Route>) {
  await e.engine.applyEvent(o.paymentId, finished(o.orderId), { source: 'ipn' });
  await e.engine.applyEvent(o.paymentId, { type: 'route.done', route: { ...routeOf(o), ...changes } }, { source: 'actor:route' });
}

async function subscriptionsOf(buyer: string) {
  const { rows } = await e.db.pool.query<{ open_channel_id: string; expires_at: Date; reminders_for: Date | null; next_reminder_at: Date | null }>(
    'SELECT open_channel_id::text, expires_at, reminders_for, next_reminder_at FROM subscriptions WHERE buyer_telegram_id = $1',
    [buyer],
  );
  return rows;
}

async function grantsOf(buyer: string) {
  const { rows } = await e.db.pool.query<{ order_id: string; starts_at: Date; expires_at: Date }>(
    `SELECT g.order_id, g.starts_at, g.expires_at FROM subscription_grants g JOIN subscriptions s USING (subscription_id)
      WHERE s.buyer_telegram_id = $1 ORDER BY g.starts_at`,
    [buyer],
  );
  return rows;
}

describe('the invite transaction: read + lock, then grant + claim', () => {
  it('a payment without a route is a permanent failure; nothing is written', async () => {
    const { paymentId } = ids();
    await expect(actor.perform(job(paymentId), context('job-noroute'))).rejects.toBeInstanceOf(PermanentFailure);
  });

  it('a channel that is not configured: invite.failed, and no subscription is created or locked', async () => {
    const o = await paidOrderFixture(e.db);
    await paidAndRoutedTo(o, { channelId: '-100424243' });
    const result = await actor.perform(job(o.paymentId), context('job-nochannel'));
    expect(result).toEqual({ type: 'invite.failed', reason: 'channel -100424243 is not configured: add it, then retry' });
    expect(await subscriptionsOf(o.buyer)).toEqual([]);
    expect(await grantsOf(o.buyer)).toEqual([]);
    expect(await inviteRow(e.db, o.orderId)).toBeUndefined();
  });

  it('a plan that is gone (the channel is there): invite.failed, and no subscription row is created', async () => {
    const o = await paidOrderFixture(e.db);
    await paidAndRoutedTo(o, { planId: 'plan-gone' });
    const result = await actor.perform(job(o.paymentId), context('job-noplan'));
    expect(result).toEqual({ type: 'invite.failed', reason: 'plan plan-gone not found: cannot tell how long access lasts; add it, then retry' });
    expect(await subscriptionsOf(o.buyer)).toEqual([]);
    expect(await grantsOf(o.buyer)).toEqual([]);
    expect(await inviteRow(e.db, o.orderId)).toBeUndefined();
  });

  it('a second order of the same buyer and channel renews from the current expiry, timers armed for the new one', async () => {
    const o = await paidOrderFixture(e.db, { durationDays: 30 });
    await payAndRoute(e.engine, o.paymentId, o);
    expect(await actor.perform(job(o.paymentId), context('job-renew-1'))).toMatchObject({ type: 'invite.sent' });
    const [first] = await grantsOf(o.buyer);
    expect(first!.expires_at.getTime() - first!.starts_at.getTime()).toBe(30 * DAY);

    const next = await anotherOrder(o);
    expect(await actor.perform(job(next.paymentId), context('job-renew-2'))).toMatchObject({ type: 'invite.sent' });
    const grants = await grantsOf(o.buyer);
    expect(grants.map((g) => g.order_id)).toEqual([o.orderId, next.orderId]);
    expect(grants[1]!.starts_at).toEqual(first!.expires_at);
    expect(grants[1]!.expires_at.getTime()).toBe(first!.expires_at.getTime() + 30 * DAY);
    const subs = await subscriptionsOf(o.buyer);
    expect(subs).toHaveLength(1);
    expect(subs[0]).toEqual({
      open_channel_id: o.openChannelId,
      expires_at: grants[1]!.expires_at,
      reminders_for: grants[1]!.expires_at,
      next_reminder_at: new Date(grants[1]!.expires_at.getTime() - 3 * DAY),
    });
  });

  it('the same order twice (two jobs, one after the other): granted once, extended once, the same link', async () => {
    const o = await paidOrderFixture(e.db, { durationDays: 30 });
    await payAndRoute(e.engine, o.paymentId, o);
    const first = await actor.perform(job(o.paymentId), context('job-twice-1'));
    const second = await actor.perform(job(o.paymentId), context('job-twice-2'));
    expect(second).toEqual(first);
    const grants = await grantsOf(o.buyer);
    expect(grants).toHaveLength(1);
    expect((await subscriptionsOf(o.buyer))[0]!.expires_at).toEqual(grants[0]!.expires_at);
  });

  it('the same order in two jobs at once: granted once, extended once; the job that loses the lease retries', async () => {
    const o = await paidOrderFixture(e.db, { durationDays: 30 });
    await payAndRoute(e.engine, o.paymentId, o);
    const outcomes = await Promise.allSettled([actor.perform(job(o.paymentId), context('job-same-a')), actor.perform(job(o.paymentId), context('job-same-b'))]);
    expect(outcomes.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(1);
    for (const r of outcomes) if (r.status === 'rejected') expect(String(r.reason)).toContain('another job is delivering');
    const grants = await grantsOf(o.buyer);
    expect(grants).toHaveLength(1);
    expect(grants[0]!.expires_at.getTime() - grants[0]!.starts_at.getTime()).toBe(30 * DAY);
    expect((await subscriptionsOf(o.buyer))[0]!.expires_at).toEqual(grants[0]!.expires_at);
  });

  it('a grant of the same order committed while the job waited for the lock: not made again, the earlier grant answered, the invite still claimed', async () => {
    const o = await paidOrderFixture(e.db, { durationDays: 30 });
    await payAndRoute(e.engine, o.paymentId, o);
    // A manual grant of the same order holds the subscription's lock, uncommitted.
    const a = await e.db.pool.connect();
    await a.query('BEGIN');
    const held = await grantAndScheduleIn({ remindersMs: REMINDERS }, a, {
      orderId: o.orderId,
      paymentId: o.paymentId,
      buyerTelegramId: o.buyer,
      openChannelId: o.openChannelId,
      planId: o.planId,
      durationDays: 30,
    });
    const performing = actor.perform(job(o.paymentId), context('job-waits'));
    await vi.waitFor(async () => {
      const { rows } = await e.db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'WITH target AS%'`);
      expect(rows).toHaveLength(1);
    });
    await a.query('COMMIT');
    a.release();
    expect(await performing).toMatchObject({ type: 'invite.sent' });
    const grants = await grantsOf(o.buyer);
    expect(grants).toEqual([{ order_id: o.orderId, starts_at: held.startsAt, expires_at: held.expiresAt }]);
    expect((await subscriptionsOf(o.buyer))[0]!.expires_at).toEqual(held.expiresAt);
    expect(await inviteRow(e.db, o.orderId)).toMatchObject({ lease_owner: null, create_attempts: 1, sent_at: expect.any(Date) });
  });

  it('another job holds the invite: the grant commits, nothing of the claim is written', async () => {
    const o = await paidOrderFixture(e.db, { durationDays: 30 });
    await payAndRoute(e.engine, o.paymentId, o);
    const other = { orderId: o.orderId, paymentId: o.paymentId, chatId: o.closedChannelId, buyerTelegramId: o.buyer, leaseMs: 300_000, attempt: 0 };
    await claimInvite(e.db.pool, { ...other, owner: 'job-other#0', linkExpireDate: new Date(Date.now() + 600_000) });
    const before = await inviteRow(e.db, o.orderId);
    await expect(actor.perform(job(o.paymentId), context('job-loses'))).rejects.toThrow(/another job is delivering/);
    expect(await grantsOf(o.buyer)).toHaveLength(1);
    expect(await inviteRow(e.db, o.orderId)).toEqual(before);
    const { rows } = await e.db.pool.query('SELECT attempt FROM invite_link_attempts WHERE order_id = $1', [o.orderId]);
    expect(rows).toEqual([{ attempt: 1 }]);
  });

  it('different orders of the same buyer and channel at once: every one granted, the expiry extended by all of them, no deadlock', async () => {
    const o = await paidOrderFixture(e.db, { durationDays: 30 });
    await payAndRoute(e.engine, o.paymentId, o);
    const orders = [o, await anotherOrder(o), await anotherOrder(o), await anotherOrder(o)];
    const results = await Promise.all(orders.map((order, i) => actor.perform(job(order.paymentId), context(`job-many-${i}`))));
    for (const result of results) expect(result).toMatchObject({ type: 'invite.sent' });
    const grants = await grantsOf(o.buyer);
    expect(new Set(grants.map((g) => g.order_id))).toEqual(new Set(orders.map((order) => order.orderId)));
    // Each grant starts where the one before it (under the lock) ended.
    for (let i = 1; i < grants.length; i++) expect(grants[i]!.starts_at).toEqual(grants[i - 1]!.expires_at);
    expect(grants.at(-1)!.expires_at.getTime() - grants[0]!.starts_at.getTime()).toBe(4 * 30 * DAY);
    expect((await subscriptionsOf(o.buyer))[0]!.expires_at).toEqual(grants.at(-1)!.expires_at);
  });
});
