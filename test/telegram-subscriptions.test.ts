import type { Api } from 'grammy';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { grantPeriod } from '../src/domain/subscription.js';
import {
  EXPIRY_QUEUE,
  REMINDER_LEASE_MS,
  REMINDER_QUEUE,
  SWEEP_QUEUE,
  grantAndSchedule,
  grantAndScheduleIn,
  parseReminders,
  sweepSubscriptions,
  type SubscriptionDeps,
} from '../src/telegram/subscriptions.service.js';
import { callsTo, paidOrderFixture, payAndRoute, seedOrder, startTelegramTest, waitForAccess, type TelegramTest } from './telegram-fixtures.js';
import type { TestDatabase } from './support/database.js';
import { recordingPool } from './support/statements.js';

// Subscriptions through the running service: grants keyed on the order, renewals extending from the
// current expiry, and the timers — columns of the subscription, swept by one scheduled job — deciding
// when they run, not when they were armed. The test service's sweep cron never fires (test/support):
// each test sweeps when it says so.

const DAY = 86_400_000;

interface SubRow {
  id: string;
  expires_at: Date;
  removed_at: Date | null;
  removal_dry_run_at: Date | null;
  next_reminder_at: Date | null;
  reminders_for: Date | null;
  reminder_attempts: number;
  removal_attempts: number;
  removal_retry_at: Date | null;
}

async function subscriptionOf(db: TestDatabase, buyer: string, openChannelId: string): Promise<SubRow> {
  const { rows } = await db.pool.query<SubRow>(
    `SELECT subscription_id::text AS id, expires_at, removed_at, removal_dry_run_at, next_reminder_at, reminders_for, reminder_attempts,
            removal_attempts, removal_retry_at
       FROM subscriptions WHERE buyer_telegram_id = $1 AND open_channel_id = $2`,
    [buyer, openChannelId],
  );
  return rows[0]!;
}

/** Runs a queue's job now (as if its startAfter had come) and waits until pg-boss completed it. */
async function runJob(t: TelegramTest, queue: string, data: object) {
  const id = await t.svc.service.boss.send(queue, data);
  expect(id).toBeTruthy();
  await vi.waitFor(
    async () => {
      const { rows } = await t.svc.db.pool.query('SELECT state FROM pgboss.job WHERE id = $1', [id]);
      expect(rows[0]?.state).toBe('completed');
    },
    { timeout: 15_000, interval: 50 },
  );
}

/** What the service's sweep job runs with. */
function sweepDeps(t: TelegramTest, api: Api = t.svc.service.bot.api): SubscriptionDeps {
  return {
    pool: t.svc.db.pool,
    boss: t.svc.service.boss,
    api,
    log: t.svc.service.log,
    remindersMs: parseReminders(t.svc.config.SUBSCRIPTION_REMINDERS),
    dryRun: t.svc.config.SUBSCRIPTION_REMOVAL_DRY_RUN,
  };
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

async function renew(t: TelegramTest, o: Awaited<ReturnType<typeof member>>, suffix: string) {
  const renewal = { ...o, orderId: `${o.orderId}-${suffix}`, paymentId: `${o.paymentId}${suffix.length + 1}` };
  await seedOrder(t.svc.db, renewal);
  await payAndRoute(t.svc.service.engine, renewal.paymentId, renewal);
  await waitForAccess(t.svc.db, renewal.paymentId, ['invited']);
}

/** As if the expiry had come: it is a second ago. */
async function expireNow(db: TestDatabase, subscriptionId: string) {
  await db.pool.query(`UPDATE subscriptions SET expires_at = date_trunc('milliseconds', now() - interval '1 second') WHERE subscription_id = $1`, [subscriptionId]);
}

/** As if 27 of the 30 days had passed: the expiry is 3 days (less a second) ahead, so its 3-day reminder came due a second ago. */
async function reminderDueNow(db: TestDatabase, subscriptionId: string) {
  await db.pool.query(
    `UPDATE subscriptions SET expires_at = x.e, reminders_for = x.e, next_reminder_at = x.e - interval '3 days'
       FROM (SELECT date_trunc('milliseconds', now() - interval '1 second') + interval '3 days' AS e) x WHERE subscription_id = $1`,
    [subscriptionId],
  );
}

/** As if the time next_reminder_at names (a claim's lease, a retry's backoff) had come: it is a second ago. */
async function nextReminderNow(db: TestDatabase, subscriptionId: string) {
  await db.pool.query(`UPDATE subscriptions SET next_reminder_at = date_trunc('milliseconds', now() - interval '1 second') WHERE subscription_id = $1`, [subscriptionId]);
}

const isMember = (t: TelegramTest, o: { closedChannelId: string; buyer: string }) => t.tg.members.get(Number(o.closedChannelId))?.has(Number(o.buyer)) ?? false;
const reminders = (t: TelegramTest, buyer: string) => callsTo(t.tg, 'sendMessage', buyer).filter((c) => /ends on/.test(String(c.body.text)));

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
    expect(sub.expires_at.getTime() - Date.now()).toBeLessThanOrEqual(30 * DAY);
  });

  it('a grant is two statements (lock and read, grant and extend), a replay one; a grant of the same order committed while waiting for the lock is not made again', async () => {
    const o = await paidOrderFixture(t.svc.db, { durationDays: 30 });
    const input = { orderId: o.orderId, paymentId: o.paymentId, buyerTelegramId: o.buyer, openChannelId: o.openChannelId, planId: o.planId, durationDays: 30 };
    const { pool: recording, sent } = recordingPool(t.svc.db.pool);
    const deps = { pool: recording, remindersMs: [] };
    // A holds its grant uncommitted; B's grant of the same order waits for the subscription's lock.
    const a = await recording.connect();
    await a.query('BEGIN');
    const first = await grantAndScheduleIn(deps, a, input);
    expect(first.fresh).toBe(true);
    expect(sent).toEqual(['BEGIN', 'subscription-lock-for-grant', 'subscription-grant']);
    const waiting = grantAndSchedule(deps, input);
    await vi.waitFor(async () => {
      const { rows } = await t.svc.db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%subscription_grants%'`);
      expect(rows).toHaveLength(1);
    });
    await a.query('COMMIT');
    a.release();
    const second = await waiting;
    expect(second).toEqual({ ...first, fresh: false });
    expect((await subscriptionOf(t.svc.db, o.buyer, o.openChannelId)).expires_at).toEqual(first.expiresAt);
    // Replayed afterwards: one statement, nothing extended.
    sent.length = 0;
    expect(await grantAndSchedule(deps, input)).toEqual({ ...first, fresh: false });
    expect(sent).toEqual(['BEGIN', 'subscription-lock-for-grant', 'COMMIT']);
    expect((await subscriptionOf(t.svc.db, o.buyer, o.openChannelId)).expires_at).toEqual(first.expiresAt);
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

  it('a paid grant enqueues no job: its reminders and its expiry are columns of the subscription', async () => {
    const o = await member(t);
    const sub = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    // SUBSCRIPTION_REMINDERS is 3d,1d: the first one due is 3 days before the end, armed for this expiry.
    expect(sub.reminders_for).toEqual(sub.expires_at);
    expect(sub.expires_at.getTime() - sub.next_reminder_at!.getTime()).toBe(3 * DAY);
    expect(sub).toMatchObject({ reminder_attempts: 0, removal_attempts: 0, removal_retry_at: null, removed_at: null });
    // Not one pg-boss job per subscription, for this grant or any other in this database.
    const { rows } = await t.svc.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = ANY($1::text[])`, [[EXPIRY_QUEUE, REMINDER_QUEUE]]);
    expect(rows[0]!.n).toBe(0);
  });

  it('a renewal extends from the current expiry, not from now, and re-arms the reminders for the new expiry', async () => {
    const o = await member(t);
    const first = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    await renew(t, o, 'renewal');
    const renewed = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    expect(renewed.id).toBe(first.id);
    expect(renewed.expires_at.getTime() - first.expires_at.getTime()).toBe(30 * DAY);
    expect(renewed.reminders_for).toEqual(renewed.expires_at);
    expect(renewed.expires_at.getTime() - renewed.next_reminder_at!.getTime()).toBe(3 * DAY);
  });

  it('a due reminder goes out once, with a renewal button, even when sweeps run at once; then the next one is armed', async () => {
    const members = await Promise.all([member(t), member(t), member(t)]);
    for (const o of members) await reminderDueNow(t.svc.db, (await subscriptionOf(t.svc.db, o.buyer, o.openChannelId)).id);

    await Promise.all([sweepSubscriptions(sweepDeps(t)), sweepSubscriptions(sweepDeps(t)), sweepSubscriptions(sweepDeps(t), { batchSize: 1 })]);
    for (const o of members) {
      const sent = reminders(t, o.buyer);
      expect(sent).toHaveLength(1);
      expect(JSON.stringify(sent[0]!.body.reply_markup)).toContain(`plans:${o.openChannelId}`);
      const after = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
      // The 3-day reminder went out; the 1-day one is next.
      expect(after.expires_at.getTime() - after.next_reminder_at!.getTime()).toBe(DAY);
      expect(after.reminder_attempts).toBe(0);
    }

    // Nothing is due any more: another sweep sends nothing.
    await sweepSubscriptions(sweepDeps(t));
    for (const o of members) expect(reminders(t, o.buyer)).toHaveLength(1);
  });

  it('a sweep that dies after claiming a reminder: it is sent once the claim runs out, and the dead sweep settling late changes nothing', async () => {
    const o = await member(t);
    const sub = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    await reminderDueNow(t.svc.db, sub.id);

    // A sweep whose Telegram call never comes back (its process is gone, as far as anyone can tell).
    const pending: ((error: Error) => void)[] = [];
    const hang = () => new Promise((_, reject) => pending.push(reject));
    const hung = { sendMessage: hang, banChatMember: hang, unbanChatMember: hang } as unknown as Api;
    const crash = (error: Error) => pending.splice(0).forEach((reject) => reject(error));
    const dead = sweepSubscriptions(sweepDeps(t, hung));
    let claimed!: SubRow;
    await vi.waitFor(
      async () => {
        claimed = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
        expect(claimed.reminder_attempts).toBe(1);
      },
      { timeout: 10_000, interval: 20 },
    );
    expect(claimed.next_reminder_at!.getTime()).toBeGreaterThan(Date.now() + REMINDER_LEASE_MS / 2);
    // While the claim holds, other sweeps leave the reminder alone.
    await sweepSubscriptions(sweepDeps(t));
    expect(reminders(t, o.buyer)).toHaveLength(0);

    // The claim runs out (as if REMINDER_LEASE_MS had passed): the next sweep sends it.
    await nextReminderNow(t.svc.db, sub.id);
    await sweepSubscriptions(sweepDeps(t));
    expect(reminders(t, o.buyer)).toHaveLength(1);
    const sent = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    expect(sent.expires_at.getTime() - sent.next_reminder_at!.getTime()).toBe(DAY);

    // The dead sweep's call finally fails: its claim is not the row's any more, so nothing moves.
    crash(new Error('socket hang up'));
    expect((await dead).reminders.failed).toBe(1);
    expect(await subscriptionOf(t.svc.db, o.buyer, o.openChannelId)).toEqual(sent);
  });

  it('a reminder Telegram fails on is retried; a refused one (403) is not; one armed for an expiry that moved is never sent', async () => {
    const [a, b, c] = await Promise.all([member(t), member(t), member(t)]);
    const subA = await subscriptionOf(t.svc.db, a.buyer, a.openChannelId);
    const subB = await subscriptionOf(t.svc.db, b.buyer, b.openChannelId);
    const subC = await subscriptionOf(t.svc.db, c.buyer, c.openChannelId);

    // a: a 500 — the reminder comes back 30 s later, then goes out.
    await reminderDueNow(t.svc.db, subA.id);
    t.tg.failNext('sendMessage', { kind: '500' });
    const failed = await sweepSubscriptions(sweepDeps(t));
    expect(failed.reminders.failed).toBe(1);
    const retry = await subscriptionOf(t.svc.db, a.buyer, a.openChannelId);
    expect(retry.reminder_attempts).toBe(1);
    expect(retry.next_reminder_at!.getTime()).toBeGreaterThan(Date.now() + 20_000);
    expect(retry.next_reminder_at!.getTime()).toBeLessThan(Date.now() + 40_000);
    await nextReminderNow(t.svc.db, subA.id);
    await sweepSubscriptions(sweepDeps(t));
    expect(reminders(t, a.buyer)).toHaveLength(1);
    const sentA = await subscriptionOf(t.svc.db, a.buyer, a.openChannelId);
    expect(sentA.expires_at.getTime() - sentA.next_reminder_at!.getTime()).toBe(DAY);

    // b: blocked the bot — settled as undeliverable, the next reminder armed.
    await reminderDueNow(t.svc.db, subB.id);
    t.tg.failNext('sendMessage', { kind: '403' });
    expect((await sweepSubscriptions(sweepDeps(t))).reminders.undeliverable).toBe(1);
    const blocked = await subscriptionOf(t.svc.db, b.buyer, b.openChannelId);
    expect(blocked.expires_at.getTime() - blocked.next_reminder_at!.getTime()).toBe(DAY);

    // c: the expiry moved without re-arming (as an instance older than the columns renews): not sent, disarmed.
    await reminderDueNow(t.svc.db, subC.id);
    await t.svc.db.pool.query(`UPDATE subscriptions SET expires_at = expires_at + interval '7 days' WHERE subscription_id = $1`, [subC.id]);
    await sweepSubscriptions(sweepDeps(t));
    expect(reminders(t, c.buyer)).toHaveLength(0);
    expect((await subscriptionOf(t.svc.db, c.buyer, c.openChannelId)).next_reminder_at).toBeNull();
  });

  it('at expiry the sweep removes the member (ban, then unban only_if_banned) and tells them; nothing removes them twice', async () => {
    const o = await member(t);
    const sub = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    const chat = Number(o.closedChannelId);
    // Before the end nothing happens.
    await sweepSubscriptions(sweepDeps(t));
    expect(isMember(t, o)).toBe(true);

    await expireNow(t.svc.db, sub.id);
    await sweepSubscriptions(sweepDeps(t));
    expect(isMember(t, o)).toBe(false);
    expect(t.tg.banned.get(chat)?.has(Number(o.buyer)) ?? false).toBe(false); // can come back after renewing
    expect(callsTo(t.tg, 'banChatMember', chat)).toHaveLength(1);
    expect(callsTo(t.tg, 'unbanChatMember', chat)[0]?.body).toMatchObject({ only_if_banned: true });
    expect((await subscriptionOf(t.svc.db, o.buyer, o.openChannelId)).removed_at).toBeInstanceOf(Date);
    const told = callsTo(t.tg, 'sendMessage', o.buyer).at(-1);
    expect(told?.body.text).toMatch(/has ended/);

    // Another sweep, and a legacy expiry job queued before the upgrade, remove nobody twice.
    await sweepSubscriptions(sweepDeps(t));
    await runJob(t, EXPIRY_QUEUE, { subscriptionId: sub.id, expiresAt: sub.expires_at.toISOString() });
    expect(callsTo(t.tg, 'banChatMember', chat)).toHaveLength(1);
  });

  it('expired members are removed once each when sweeps run at once', async () => {
    const members = await Promise.all([member(t), member(t), member(t), member(t)]);
    for (const o of members) await expireNow(t.svc.db, (await subscriptionOf(t.svc.db, o.buyer, o.openChannelId)).id);
    await Promise.all([sweepSubscriptions(sweepDeps(t)), sweepSubscriptions(sweepDeps(t), { batchSize: 1 }), sweepSubscriptions(sweepDeps(t), { batchSize: 2 })]);
    for (const o of members) {
      expect(isMember(t, o)).toBe(false);
      expect(callsTo(t.tg, 'banChatMember', o.closedChannelId)).toHaveLength(1);
      expect(callsTo(t.tg, 'sendMessage', o.buyer).filter((c) => /has ended/.test(String(c.body.text)))).toHaveLength(1);
    }
  });

  it('a member who renewed before the sweep ran is kept, and one renewing while it runs too', async () => {
    // Renewed a second before the sweep: the sweep reads the new expiry.
    const o = await member(t);
    const sub = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    await expireNow(t.svc.db, sub.id);
    await renew(t, o, 'renewal');
    await sweepSubscriptions(sweepDeps(t));
    expect(isMember(t, o)).toBe(true);
    expect(callsTo(t.tg, 'banChatMember', o.closedChannelId, false)).toHaveLength(0);
    const after = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    expect(after.removed_at).toBeNull();
    // A lapsed subscription restarts from the renewal, not from the missed expiry.
    expect(after.expires_at.getTime()).toBeGreaterThan(Date.now() + 29 * DAY);

    // Renewing while the sweep runs: the renewal holds the row, the sweep leaves it for its next run.
    const p = await member(t);
    const lapsing = await subscriptionOf(t.svc.db, p.buyer, p.openChannelId);
    await expireNow(t.svc.db, lapsing.id);
    const order = { ...p, orderId: `${p.orderId}-during`, paymentId: `${p.paymentId}8` };
    await seedOrder(t.svc.db, order);
    const tx = await t.svc.db.pool.connect();
    try {
      await tx.query('BEGIN');
      await grantAndScheduleIn({ remindersMs: [3 * DAY, DAY] }, tx, {
        orderId: order.orderId,
        paymentId: order.paymentId,
        buyerTelegramId: p.buyer,
        openChannelId: p.openChannelId,
        planId: p.planId,
        durationDays: 30,
      });
      const during = await sweepSubscriptions(sweepDeps(t));
      expect(during.removals.busy).toBeGreaterThanOrEqual(1);
      await tx.query('COMMIT');
    } finally {
      tx.release();
    }
    await sweepSubscriptions(sweepDeps(t));
    expect(isMember(t, p)).toBe(true);
    expect(callsTo(t.tg, 'banChatMember', p.closedChannelId, false)).toHaveLength(0);
    expect((await subscriptionOf(t.svc.db, p.buyer, p.openChannelId)).removed_at).toBeNull();
  });

  it('a removal Telegram refuses is retried after a backoff, not on every sweep', async () => {
    const o = await member(t);
    const sub = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    await expireNow(t.svc.db, sub.id);
    t.tg.failNext('banChatMember', { kind: '400', description: 'Bad Request: not enough rights to restrict/ban chat member' });
    expect((await sweepSubscriptions(sweepDeps(t))).removals.failed).toBe(1);
    const failed = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    expect(failed.removal_attempts).toBe(1);
    expect(failed.removal_retry_at!.getTime()).toBeGreaterThan(Date.now());
    expect(failed.removed_at).toBeNull();

    // Before the backoff is over the sweep does not ask Telegram again.
    await sweepSubscriptions(sweepDeps(t));
    expect(callsTo(t.tg, 'banChatMember', o.closedChannelId, false)).toHaveLength(1);

    // Once it is (as if 5 s had passed), it does, and the removal completes.
    await t.svc.db.pool.query(`UPDATE subscriptions SET removal_retry_at = now() WHERE subscription_id = $1`, [sub.id]);
    await sweepSubscriptions(sweepDeps(t));
    expect(isMember(t, o)).toBe(false);
    expect(await subscriptionOf(t.svc.db, o.buyer, o.openChannelId)).toMatchObject({ removal_attempts: 0, removal_retry_at: null, removed_at: expect.any(Date) });
  });

  it('runs as one scheduled pg-boss job (SUBSCRIPTION_SWEEP_EVERY) that does the work', async () => {
    const schedules = await t.svc.service.boss.getSchedules(SWEEP_QUEUE);
    expect(schedules.map((s) => s.cron)).toEqual([t.svc.config.SUBSCRIPTION_SWEEP_EVERY]);
    const o = await member(t);
    await expireNow(t.svc.db, (await subscriptionOf(t.svc.db, o.buyer, o.openChannelId)).id);
    await runJob(t, SWEEP_QUEUE, {});
    expect(isMember(t, o)).toBe(false);
  });

  it('a legacy reminder job (queued before the upgrade) still goes out, and stands down once the columns own that expiry', async () => {
    const o = await member(t);
    const sub = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    // A subscription granted before migration 016: no columns armed, its reminders queued as jobs.
    await t.svc.db.pool.query(`UPDATE subscriptions SET reminders_for = NULL, next_reminder_at = NULL WHERE subscription_id = $1`, [sub.id]);
    await runJob(t, REMINDER_QUEUE, { subscriptionId: sub.id, expiresAt: sub.expires_at.toISOString(), beforeMs: DAY });
    const reminder = reminders(t, o.buyer)[0];
    expect(reminder?.body.text).toMatch(/ends on/);
    expect(JSON.stringify(reminder?.body.reply_markup)).toContain(`plans:${o.openChannelId}`);
    // One for an expiry a renewal moved is skipped.
    await runJob(t, REMINDER_QUEUE, { subscriptionId: sub.id, expiresAt: new Date(sub.expires_at.getTime() - 1000).toISOString(), beforeMs: DAY });
    expect(reminders(t, o.buyer)).toHaveLength(1);

    // After a renewal the columns own the new expiry: an old instance's job for it stands down.
    await renew(t, o, 'renewal');
    const renewed = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    await runJob(t, REMINDER_QUEUE, { subscriptionId: sub.id, expiresAt: renewed.expires_at.toISOString(), beforeMs: DAY });
    expect(reminders(t, o.buyer)).toHaveLength(1);
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

  it('an expired member is logged, not removed, and not looked at again by later sweeps', async () => {
    const o = await member(t);
    const sub = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    await expireNow(t.svc.db, sub.id);
    expect((await sweepSubscriptions(sweepDeps(t))).removals['dry-run']).toBe(1);
    expect(t.tg.members.get(Number(o.closedChannelId))?.has(Number(o.buyer))).toBe(true);
    expect(t.tg.callsOf('banChatMember')).toHaveLength(0);
    expect(t.tg.callsOf('unbanChatMember')).toHaveLength(0);
    const after = await subscriptionOf(t.svc.db, o.buyer, o.openChannelId);
    expect(after.removed_at).toBeNull();
    expect(after.removal_dry_run_at).toBeInstanceOf(Date);
    expect((await sweepSubscriptions(sweepDeps(t))).removals['dry-run']).toBe(0);
    expect((await subscriptionOf(t.svc.db, o.buyer, o.openChannelId)).removal_dry_run_at).toEqual(after.removal_dry_run_at);
  });
});
