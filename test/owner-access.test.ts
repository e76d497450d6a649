import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EXPIRY_QUEUE, REMINDER_QUEUE, grantAndSchedule, grantAndScheduleIn, sweepSubscriptions } from '../src/telegram/subscriptions.service.js';
import type { TestDatabase } from './support/database.js';
import { buttonUrl, callsTo, ids, paidOrderFixture, payAndRoute, seedChannel, seedOrder, startTelegramTest, waitForAccess, type TelegramTest } from './telegram-fixtures.js';

// Manual access through the admin API, against the running service and the fake Bot API: grant, extend
// and revoke, each recorded (who, why, when), each under the subscription's row lock that renewals and
// the expiry job take — including a revoke racing a paid renewal in both orders.

const ADMIN = 'owner-access-admin-token-'.padEnd(32, 'x');
const DAY = 86_400_000;

let t: TelegramTest;
beforeAll(async () => {
  t = await startTelegramTest({ ADMIN_TOKEN: ADMIN });
});
afterAll(async () => {
  await t?.close();
});

const db = (): TestDatabase => t.svc.db;

function change(channel: string, buyer: string, body: object, token: string | null = ADMIN) {
  return t.svc.service.app.inject({
    method: 'POST',
    url: `/admin/channels/${channel}/subscribers/${buyer}`,
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
    payload: body,
  });
}

async function subscriptionOf(buyer: string, openChannelId: string) {
  const { rows } = await db().pool.query<{ id: string; expires_at: Date; removed_at: Date | null }>(
    `SELECT subscription_id::text AS id, expires_at, removed_at FROM subscriptions WHERE buyer_telegram_id = $1 AND open_channel_id = $2`,
    [buyer, openChannelId],
  );
  return rows[0];
}

async function adjustments(subscriptionId: string) {
  const { rows } = await db().pool.query(`SELECT * FROM subscription_adjustments WHERE subscription_id = $1 ORDER BY adjustment_id`, [subscriptionId]);
  return rows as { action: string; duration_ms: string | null; expires_before: Date | null; expires_after: Date; adjusted_by: string; reason: string; created_at: Date }[];
}

/** A buyer who paid, got the invite and joined the closed channel through it. */
async function member() {
  const o = await paidOrderFixture(db(), { durationDays: 30 });
  await payAndRoute(t.svc.service.engine, o.paymentId, o);
  const access = await waitForAccess(db(), o.paymentId, ['invited']);
  t.tg.simulateJoin(Number(o.closedChannelId), Number(o.buyer), access.link!);
  return o;
}

const isMember = (o: { closedChannelId: string; buyer: string }) => t.tg.members.get(Number(o.closedChannelId))?.has(Number(o.buyer)) ?? false;

/** A paid renewal exactly as the invite actor grants it (grant + its jobs, once per order). */
async function renewalOf(o: { orderId: string; paymentId: string; buyer: string; openChannelId: string; planId: string }, suffix: string) {
  const order = { ...o, orderId: `${o.orderId}-${suffix}`, paymentId: `${o.paymentId}${suffix.length}` };
  await seedOrder(db(), order);
  const input = { orderId: order.orderId, paymentId: order.paymentId, buyerTelegramId: o.buyer, openChannelId: o.openChannelId, planId: o.planId, durationDays: 30 };
  return { order, input, deps: { pool: db().pool, boss: t.svc.service.boss, remindersMs: [] } };
}

/** Sessions of this test database waiting for a lock (the row lock of a subscription). */
async function waitForLockWaiters(n: number) {
  await vi.waitFor(
    async () => {
      const { rows } = await db().pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
      );
      expect(rows[0]!.n).toBeGreaterThanOrEqual(n);
    },
    { timeout: 10_000, interval: 20 },
  );
}

/** Runs a queue's job now and waits until pg-boss completed it. */
async function runJob(queue: string, data: object) {
  const id = await t.svc.service.boss.send(queue, data);
  await vi.waitFor(
    async () => {
      const { rows } = await db().pool.query('SELECT state FROM pgboss.job WHERE id = $1', [id]);
      expect(rows[0]?.state).toBe('completed');
    },
    { timeout: 15_000, interval: 50 },
  );
}

/** The subscription's timers (migrations/016): the reminder columns and the expiry they were armed for. */
async function timersOf(subscriptionId: string) {
  const { rows } = await db().pool.query<{ expires_at: Date; reminders_for: Date | null; next_reminder_at: Date | null }>(
    `SELECT expires_at, reminders_for, next_reminder_at FROM subscriptions WHERE subscription_id = $1`,
    [subscriptionId],
  );
  return rows[0]!;
}

/** One run of the subscription sweep, as the scheduled job runs it. */
const sweep = () =>
  sweepSubscriptions({ pool: db().pool, boss: t.svc.service.boss, api: t.svc.service.bot.api, log: t.svc.service.log, remindersMs: [3 * DAY, DAY], dryRun: false });

async function jobsFor(queue: string, subscriptionId: string) {
  const { rows } = await db().pool.query<{ expires: string; before: string | null }>(
    `SELECT data->>'expiresAt' AS expires, data->>'beforeMs' AS before FROM pgboss.job WHERE name = $1 AND data->>'subscriptionId' = $2`,
    [queue, subscriptionId],
  );
  return rows;
}

describe('grant', () => {
  it('lets a buyer without a subscription in: creates it, records who and why, arms expiry and reminders, and DMs a single-use link', async () => {
    const i = ids();
    await seedChannel(db(), i);
    const before = Date.now();
    const res = await change(i.openChannelId, i.buyer, { action: 'grant', duration: '30d', by: 'alice', reason: 'paid by bank transfer' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.subscription.status).toBe('active');
    expect(body.adjustment).toMatchObject({ action: 'grant', duration: '30d', expires_before: null, by: 'alice', reason: 'paid by bank transfer', buyer_telegram_id: i.buyer });

    const sub = (await subscriptionOf(i.buyer, i.openChannelId))!;
    expect(sub.expires_at.getTime()).toBeGreaterThanOrEqual(before + 30 * DAY - 5_000);
    expect(sub.expires_at.toISOString()).toBe(body.adjustment.expires_after);
    const [adj] = await adjustments(sub.id);
    expect(adj).toMatchObject({ action: 'grant', duration_ms: String(30 * DAY), adjusted_by: 'alice', reason: 'paid by bank transfer', expires_before: null });
    expect(adj!.created_at).toBeInstanceOf(Date);

    // Armed on the row in the grant's transaction (the sweep acts on them); no job per subscription.
    const timers = await timersOf(sub.id);
    expect(timers.reminders_for).toEqual(sub.expires_at);
    expect(sub.expires_at.getTime() - timers.next_reminder_at!.getTime()).toBe(3 * DAY);
    expect(await jobsFor(EXPIRY_QUEUE, sub.id)).toEqual([]);
    expect(await jobsFor(REMINDER_QUEUE, sub.id)).toEqual([]);

    // The buyer was never in the channel: a single-use link, by DM, and it works.
    expect(body.invite).toMatchObject({ dm: 'sent' });
    const created = callsTo(t.tg, 'createChatInviteLink', i.closedChannelId).at(-1)!;
    expect(created.body).toMatchObject({ member_limit: 1 });
    const dm = callsTo(t.tg, 'sendMessage', i.buyer).at(-1)!;
    expect(buttonUrl(dm)).toBe(body.invite.link);
    expect(dm.body.parse_mode).toBeUndefined();
    t.tg.simulateJoin(Number(i.closedChannelId), Number(i.buyer), body.invite.link);
    expect(isMember(i)).toBe(true);
  });

  it('lets a removed buyer back in with a fresh period and a link; a DM Telegram refuses still leaves the link in the answer', async () => {
    const o = await member();
    expect((await change(o.openChannelId, o.buyer, { action: 'revoke', by: 'carol', reason: 'chargeback' })).statusCode).toBe(200);
    const revokedAt = (await subscriptionOf(o.buyer, o.openChannelId))!.expires_at;
    t.tg.failNext('sendMessage', { kind: '403', description: 'Forbidden: bot was blocked by the user' });
    const res = await change(o.openChannelId, o.buyer, { action: 'grant', duration: '7d', by: 'carol', reason: 'chargeback withdrawn' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.subscription).toMatchObject({ status: 'active', removed_at: null });
    expect(body.adjustment.expires_before).toBe(revokedAt.toISOString());
    expect(new Date(body.adjustment.expires_after).getTime() - revokedAt.getTime()).toBeGreaterThanOrEqual(7 * DAY);
    expect(body.invite).toMatchObject({ dm: 'failed', link: expect.stringMatching(/^https:/), error: expect.stringMatching(/blocked/) });
    t.tg.simulateJoin(Number(o.closedChannelId), Number(o.buyer), body.invite.link);
    expect(isMember(o)).toBe(true);
  });

  it('is refused while access runs (409: use extend), changing nothing', async () => {
    const o = await member();
    const sub = (await subscriptionOf(o.buyer, o.openChannelId))!;
    const res = await change(o.openChannelId, o.buyer, { action: 'grant', duration: '7d', by: 'alice', reason: 'goodwill' });
    expect(res.statusCode).toBe(409);
    expect(res.json().message).toMatch(/use "extend"/);
    expect((await subscriptionOf(o.buyer, o.openChannelId))!.expires_at).toEqual(sub.expires_at);
    expect(await adjustments(sub.id)).toHaveLength(0);
  });
});

describe('extend', () => {
  it('adds the duration to the current expiry and re-arms its timers; a job queued for the old expiry then keeps the member', async () => {
    const o = await member();
    const sub = (await subscriptionOf(o.buyer, o.openChannelId))!;
    const res = await change(o.openChannelId, o.buyer, { action: 'extend', duration: '12h', by: 'bob', reason: 'outage compensation' });
    expect(res.statusCode).toBe(200);
    const after = (await subscriptionOf(o.buyer, o.openChannelId))!;
    expect(after.expires_at.getTime() - sub.expires_at.getTime()).toBe(12 * 3_600_000);
    expect(res.json().adjustment).toMatchObject({ action: 'extend', duration: '12h', expires_before: sub.expires_at.toISOString(), expires_after: after.expires_at.toISOString() });
    expect((await timersOf(sub.id)).reminders_for).toEqual(after.expires_at);
    expect(res.json().invite).toBeUndefined();

    // A legacy expiry job (queued before migration 016) for the old expiry runs (as if that moment had
    // come early): it reads the current expiry and keeps them. So does a sweep.
    await runJob(EXPIRY_QUEUE, { subscriptionId: sub.id, expiresAt: sub.expires_at.toISOString() });
    await sweep();
    expect(isMember(o)).toBe(true);
    expect(callsTo(t.tg, 'banChatMember', o.closedChannelId)).toHaveLength(0);
  });

  it('of a lapsed (not yet removed) subscription runs from now, like a renewal', async () => {
    const o = await member();
    const sub = (await subscriptionOf(o.buyer, o.openChannelId))!;
    await db().pool.query(`UPDATE subscriptions SET expires_at = date_trunc('milliseconds', now() - interval '2 days') WHERE subscription_id = $1`, [sub.id]);
    const before = Date.now();
    const res = await change(o.openChannelId, o.buyer, { action: 'extend', duration: '1d', by: 'bob', reason: 'grace day' });
    expect(res.statusCode).toBe(200);
    const after = (await subscriptionOf(o.buyer, o.openChannelId))!;
    expect(after.expires_at.getTime()).toBeGreaterThanOrEqual(before + DAY - 5_000);
    expect(after.expires_at.getTime()).toBeLessThanOrEqual(Date.now() + DAY);
  });

  it('is refused for a buyer without a subscription (404) or one who was removed (409: use grant)', async () => {
    const i = ids();
    await seedChannel(db(), i);
    const none = await change(i.openChannelId, i.buyer, { action: 'extend', duration: '1d', by: 'bob', reason: 'x' });
    expect(none.statusCode).toBe(404);
    expect(none.json().message).toMatch(/use "grant"/);

    const o = await member();
    expect((await change(o.openChannelId, o.buyer, { action: 'revoke', by: 'bob', reason: 'chargeback' })).statusCode).toBe(200);
    const removed = await change(o.openChannelId, o.buyer, { action: 'extend', duration: '1d', by: 'bob', reason: 'x' });
    expect(removed.statusCode).toBe(409);
    expect(removed.json().message).toMatch(/use "grant"/);
  });
});

describe('revoke', () => {
  it('ends access now and removes the member the way expiry does (ban, then unban only_if_banned), recorded and told', async () => {
    const o = await member();
    const sub = (await subscriptionOf(o.buyer, o.openChannelId))!;
    const before = Date.now();
    const res = await change(o.openChannelId, o.buyer, { action: 'revoke', by: 'carol', reason: 'chargeback' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.removal).toMatchObject({ outcome: 'removed' });
    expect(body.subscription).toMatchObject({ status: 'removed' });

    const chat = Number(o.closedChannelId);
    expect(isMember(o)).toBe(false);
    expect(t.tg.banned.get(chat)?.has(Number(o.buyer)) ?? false).toBe(false);
    expect(callsTo(t.tg, 'banChatMember', chat)).toHaveLength(1);
    expect(callsTo(t.tg, 'unbanChatMember', chat)[0]?.body).toMatchObject({ only_if_banned: true });
    const after = (await subscriptionOf(o.buyer, o.openChannelId))!;
    expect(after.removed_at).toBeInstanceOf(Date);
    expect(after.expires_at.getTime()).toBeGreaterThanOrEqual(before - 1);
    expect(after.expires_at.getTime()).toBeLessThanOrEqual(Date.now());
    expect(await adjustments(sub.id)).toEqual([
      expect.objectContaining({ action: 'revoke', duration_ms: null, expires_before: sub.expires_at, expires_after: after.expires_at, adjusted_by: 'carol', reason: 'chargeback' }),
    ]);
    expect(callsTo(t.tg, 'sendMessage', o.buyer).at(-1)?.body.text).toMatch(/has ended/);

    // Once is enough: a second revoke is a 409 and removes nobody twice.
    const again = await change(o.openChannelId, o.buyer, { action: 'revoke', by: 'carol', reason: 'again' });
    expect(again.statusCode).toBe(409);
    expect(callsTo(t.tg, 'banChatMember', chat)).toHaveLength(1);
  });

  it('revokes the unused invite link of a buyer who paid but had not joined yet', async () => {
    const o = await paidOrderFixture(db(), { durationDays: 30 });
    await payAndRoute(t.svc.service.engine, o.paymentId, o);
    const access = await waitForAccess(db(), o.paymentId, ['invited']);
    const res = await change(o.openChannelId, o.buyer, { action: 'revoke', by: 'carol', reason: 'fraud' });
    expect(res.statusCode).toBe(200);
    expect(res.json().removal.revoked_links).toBe(1);
    expect(t.tg.inviteLinks.get(access.link!)?.link.is_revoked).toBe(true);
    const { rows } = await db().pool.query(`SELECT revoke_reason FROM invites WHERE order_id = $1`, [o.orderId]);
    expect(rows[0].revoke_reason).toBe('access revoked by an admin');
  });

  it('a revoked buyer who pays later is granted again normally, from the payment on', async () => {
    const o = await member();
    expect((await change(o.openChannelId, o.buyer, { action: 'revoke', by: 'carol', reason: 'chargeback' })).statusCode).toBe(200);
    const revokedAt = (await subscriptionOf(o.buyer, o.openChannelId))!.expires_at;

    const renewal = { ...o, orderId: `${o.orderId}-again`, paymentId: `${o.paymentId}5` };
    await seedOrder(db(), renewal);
    await payAndRoute(t.svc.service.engine, renewal.paymentId, renewal);
    const access = await waitForAccess(db(), renewal.paymentId, ['invited']);
    const after = (await subscriptionOf(o.buyer, o.openChannelId))!;
    expect(after.removed_at).toBeNull();
    expect(after.expires_at.getTime()).toBeGreaterThanOrEqual(revokedAt.getTime() + 30 * DAY);
    expect(after.expires_at.getTime()).toBeLessThanOrEqual(Date.now() + 30 * DAY);
    t.tg.simulateJoin(Number(o.closedChannelId), Number(o.buyer), access.link!);
    expect(isMember(o)).toBe(true);
  });

  it('when Telegram refuses the removal, answers "pending" and the subscription sweep finishes it', async () => {
    const o = await member();
    t.tg.failNext('banChatMember', { kind: '400', description: 'Bad Request: not enough rights to restrict/ban chat member' });
    const res = await change(o.openChannelId, o.buyer, { action: 'revoke', by: 'carol', reason: 'chargeback' });
    expect(res.statusCode).toBe(200);
    expect(res.json().removal).toMatchObject({ outcome: 'pending', error: expect.stringMatching(/not enough rights/) });
    // The revoke ended the subscription: its next sweep (every SUBSCRIPTION_SWEEP_EVERY) removes the member.
    await sweep();
    expect((await subscriptionOf(o.buyer, o.openChannelId))!.removed_at).toBeInstanceOf(Date);
    expect(isMember(o)).toBe(false);
  });

  it('of a buyer without a subscription is a 404', async () => {
    const i = ids();
    await seedChannel(db(), i);
    expect((await change(i.openChannelId, i.buyer, { action: 'revoke', by: 'carol', reason: 'x' })).statusCode).toBe(404);
  });
});

describe('a revoke racing a paid renewal', () => {
  it('renewal first (it holds the row lock while the revoke arrives): the revoke waits, then ends the renewed access', async () => {
    const o = await member();
    const original = (await subscriptionOf(o.buyer, o.openChannelId))!;
    const { input, deps } = await renewalOf(o, 'r1');
    const tx = await db().pool.connect();
    let grant;
    try {
      await tx.query('BEGIN');
      grant = await grantAndScheduleIn(deps, tx, input);
      const revoke = change(o.openChannelId, o.buyer, { action: 'revoke', by: 'carol', reason: 'race' });
      await waitForLockWaiters(1);
      await tx.query('COMMIT');
      const res = await revoke;
      expect(res.statusCode).toBe(200);
      expect(res.json().removal.outcome).toBe('removed');
      expect(res.json().adjustment.expires_before).toBe(grant.expiresAt.toISOString());
    } finally {
      tx.release();
    }
    expect(grant.startsAt).toEqual(original.expires_at); // the renewal saw the original expiry
    const after = (await subscriptionOf(o.buyer, o.openChannelId))!;
    expect(after.removed_at).toBeInstanceOf(Date);
    expect(after.expires_at.getTime()).toBeLessThanOrEqual(Date.now());
    expect(isMember(o)).toBe(false);
  });

  it('revoke first (both wait behind a lock; the revoke is first in line): the renewal then grants from the revoke on', async () => {
    const o = await member();
    const original = (await subscriptionOf(o.buyer, o.openChannelId))!;
    const { input, deps } = await renewalOf(o, 'r2');
    const holder = await db().pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM subscriptions WHERE subscription_id = $1 FOR UPDATE', [original.id]);
      const revoke = change(o.openChannelId, o.buyer, { action: 'revoke', by: 'carol', reason: 'race' });
      await waitForLockWaiters(1);
      const renewal = grantAndSchedule(deps, input);
      await waitForLockWaiters(2);
      await holder.query('COMMIT');
      const [res, grant] = await Promise.all([revoke, renewal]);
      expect(res.statusCode).toBe(200);
      const adjustment = res.json().adjustment;
      expect(adjustment.expires_before).toBe(original.expires_at.toISOString());
      // The renewal saw the revoke: it starts at the revoke's moment or later, not at the old expiry.
      expect(grant.startsAt.getTime()).toBeGreaterThanOrEqual(new Date(adjustment.expires_after).getTime());
      expect(grant.expiresAt.getTime() - grant.startsAt.getTime()).toBe(30 * DAY);
      const after = (await subscriptionOf(o.buyer, o.openChannelId))!;
      expect(after.removed_at).toBeNull();
      expect(after.expires_at).toEqual(grant.expiresAt);
      // Either the removal saw the renewal ("kept") or it ran before it; both are the order revoke → renewal.
      expect(['kept', 'removed']).toContain(res.json().removal.outcome);
    } finally {
      holder.release();
    }
  });

  it('under real concurrency every pair ends as one of the two orders, never a mix', async () => {
    const members = await Promise.all(Array.from({ length: 6 }, () => member()));
    const results = await Promise.all(
      members.map(async (o, n) => {
        const original = (await subscriptionOf(o.buyer, o.openChannelId))!;
        const { input, deps } = await renewalOf(o, `c${n}`);
        const [res, grant] = await Promise.all([change(o.openChannelId, o.buyer, { action: 'revoke', by: 'carol', reason: 'race' }), grantAndSchedule(deps, input)]);
        return { o, original, res, grant };
      }),
    );
    for (const { o, original, res, grant } of results) {
      expect(res.statusCode).toBe(200);
      const adjustment = res.json().adjustment;
      const after = (await subscriptionOf(o.buyer, o.openChannelId))!;
      if (grant.startsAt.getTime() === original.expires_at.getTime()) {
        // renewal → revoke: the revoke ended the renewed access.
        expect(adjustment.expires_before).toBe(grant.expiresAt.toISOString());
        expect(after.removed_at).toBeInstanceOf(Date);
        expect(after.expires_at.toISOString()).toBe(adjustment.expires_after);
      } else {
        // revoke → renewal: the renewal started after the revoke and stands.
        expect(adjustment.expires_before).toBe(original.expires_at.toISOString());
        expect(grant.startsAt.getTime()).toBeGreaterThanOrEqual(new Date(adjustment.expires_after).getTime());
        expect(after.removed_at).toBeNull();
        expect(after.expires_at).toEqual(grant.expiresAt);
      }
    }
  });
});

describe('input and records', () => {
  it('refuses bad input with 400 naming the field, an unknown channel with 404, no token with 401', async () => {
    const o = await member();
    const cases: [object, string][] = [
      [{ action: 'grant', by: 'a', reason: 'r' }, 'duration'],
      [{ action: 'extend', duration: '30 days', by: 'a', reason: 'r' }, 'duration'],
      [{ action: 'extend', duration: '0s', by: 'a', reason: 'r' }, 'duration'],
      [{ action: 'revoke', duration: '1d', by: 'a', reason: 'r' }, 'duration'],
      [{ action: 'extend', duration: '1d', reason: 'r' }, 'by'],
      [{ action: 'extend', duration: '1d', by: 'a', reason: '  ' }, 'reason'],
      [{ action: 'pause', by: 'a', reason: 'r' }, 'action'],
    ];
    for (const [body, field] of cases) {
      const res = await change(o.openChannelId, o.buyer, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().message).toContain(field);
    }
    expect((await change('-100999', o.buyer, { action: 'grant', duration: '1d', by: 'a', reason: 'r' })).statusCode).toBe(404);
    expect((await change(o.openChannelId, 'abc', { action: 'grant', duration: '1d', by: 'a', reason: 'r' })).statusCode).toBe(400);
    expect((await change(o.openChannelId, o.buyer, { action: 'revoke', by: 'a', reason: 'r' }, null)).statusCode).toBe(401);
    expect(isMember(o)).toBe(true);
  });

  it('adjustments are append-only and listed newest first', async () => {
    const o = await member();
    await change(o.openChannelId, o.buyer, { action: 'extend', duration: '1d', by: 'dave', reason: 'first' });
    await change(o.openChannelId, o.buyer, { action: 'extend', duration: '2d', by: 'erin', reason: 'second' });
    const listed = await t.svc.service.app.inject({ method: 'GET', url: `/admin/channels/${o.openChannelId}/adjustments?buyer=${o.buyer}`, headers: { authorization: `Bearer ${ADMIN}` } });
    expect(listed.json().adjustments.map((a: { by: string; duration: string }) => [a.by, a.duration])).toEqual([
      ['erin', '2d'],
      ['dave', '1d'],
    ]);
    await expect(db().pool.query(`UPDATE subscription_adjustments SET reason = 'edited' WHERE buyer_telegram_id = $1`, [o.buyer])).rejects.toThrow(/append-only/);
    await expect(db().pool.query(`DELETE FROM subscription_adjustments WHERE buyer_telegram_id = $1`, [o.buyer])).rejects.toThrow(/append-only/);
  });
});
