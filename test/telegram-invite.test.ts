import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPIRY_QUEUE, REMINDER_QUEUE } from '../src/telegram/subscriptions.service.js';
import {
  buttonUrl,
  callsTo,
  inviteRow,
  paidOrderFixture,
  payAndRoute,
  finished,
  routeOf,
  startTelegramTest,
  waitForAccess,
  type TelegramTest,
} from './telegram-fixtures.js';

// The invite actor through the running service: real Postgres, pg-boss workers, the fake Bot API over
// HTTP. Every test counts what reached Telegram for its own order's chat and buyer.

let t: TelegramTest;
beforeAll(async () => {
  // Retries: enough for the fault bursts below; delays stay short (1 s, backoff to 2 s).
  t = await startTelegramTest({ JOB_RETRY_LIMIT: '6', INVITE_EXPIRE_AFTER: '1d' });
});
afterAll(async () => {
  await t?.close();
});

describe('invite actor', () => {
  it('a paid, routed order gets one single-use link, persisted, DMed with an "Open the channel" button', async () => {
    const o = await paidOrderFixture(t.svc.db);
    const before = Math.floor(Date.now() / 1000);
    await payAndRoute(t.svc.service.engine, o.paymentId, o);
    const access = await waitForAccess(t.svc.db, o.paymentId, ['invited']);

    const created = callsTo(t.tg, 'createChatInviteLink', o.closedChannelId);
    expect(created).toHaveLength(1);
    // Created short-lived (an orphan, should its answer be lost, dies in 10 minutes), named after the
    // order and the attempt; extended to INVITE_EXPIRE_AFTER once stored, before it is sent.
    expect(created[0]!.body).toMatchObject({ member_limit: 1, name: `${o.orderId}#1` });
    const shortExpire = created[0]!.body.expire_date as number;
    expect(shortExpire - before).toBeGreaterThanOrEqual(600 - 5);
    expect(shortExpire - before).toBeLessThanOrEqual(600 + 5);
    const link = (created[0]!.result as { invite_link: string }).invite_link;
    const edited = callsTo(t.tg, 'editChatInviteLink', o.closedChannelId);
    expect(edited).toHaveLength(1);
    expect(edited[0]!.body).toMatchObject({ invite_link: link, member_limit: 1, name: `${o.orderId}#1` });
    const expire = edited[0]!.body.expire_date as number;
    expect(expire - before).toBeGreaterThanOrEqual(86_400 - 5);
    expect(expire - before).toBeLessThanOrEqual(86_400 + 5);
    expect(t.tg.inviteLinks.get(link)?.link).toMatchObject({ expire_date: expire, member_limit: 1 });
    expect(edited[0]!.at).toBeLessThanOrEqual(callsTo(t.tg, 'sendMessage', o.buyer)[0]!.at);

    const sent = callsTo(t.tg, 'sendMessage', o.buyer);
    expect(sent).toHaveLength(1);
    expect(buttonUrl(sent[0])).toBe(link);
    expect(access.link).toBe(link);

    const row = await inviteRow(t.svc.db, o.orderId);
    expect(row).toMatchObject({ invite_link: link, create_attempts: 1, chat_id: o.closedChannelId });
    expect(row?.sent_at).toBeInstanceOf(Date);
    expect((row?.send_attempted_at as Date).getTime()).toBeLessThanOrEqual((row?.sent_at as Date).getTime());
  });

  it('50 concurrent duplicate IPNs, 50 duplicate route results and 1,000 status reads: one link, one message', async () => {
    const o = await paidOrderFixture(t.svc.db);
    const engine = t.svc.service.engine;
    const route = { type: 'route.done' as const, route: routeOf(o) };
    const reads = Array.from({ length: 1000 }, () =>
      t.svc.db.pool.query(`SELECT state, snapshot->'context'->'access' FROM payments WHERE payment_id = $1`, [o.paymentId]),
    );
    await Promise.all([
      ...Array.from({ length: 50 }, () => engine.applyEvent(o.paymentId, finished(o.orderId), { source: 'ipn' })),
      ...reads,
    ]);
    await Promise.all(Array.from({ length: 50 }, () => engine.applyEvent(o.paymentId, route, { source: 'actor:route' })));
    await waitForAccess(t.svc.db, o.paymentId, ['invited']);
    expect(callsTo(t.tg, 'createChatInviteLink', o.closedChannelId, false)).toHaveLength(1);
    expect(callsTo(t.tg, 'sendMessage', o.buyer, false)).toHaveLength(1);
  });

  it('the worker dies after persisting the link, before sending: the retry sends that same link and creates none', async () => {
    const o = await paidOrderFixture(t.svc.db);
    // The "crash": the step after "link stored" fails once, as if the process died right there.
    await t.svc.db.pool.query(`
      CREATE SEQUENCE invite_crash;
      CREATE FUNCTION invite_crash() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.order_id = '${o.orderId}' AND NEW.send_attempted_at IS NOT NULL AND OLD.send_attempted_at IS NULL
           AND nextval('invite_crash') = 1 THEN
          RAISE EXCEPTION 'worker died between creating the link and sending it';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER invite_crash BEFORE UPDATE ON invites FOR EACH ROW EXECUTE FUNCTION invite_crash();`);
    try {
      await payAndRoute(t.svc.service.engine, o.paymentId, o);
      const access = await waitForAccess(t.svc.db, o.paymentId, ['invited']);
      const { rows } = await t.svc.db.pool.query(`SELECT retry_count FROM pgboss.job WHERE name = 'effect-invite' AND data->>'paymentId' = $1`, [o.paymentId]);
      expect(rows[0].retry_count).toBeGreaterThanOrEqual(1); // it really was retried

      const created = callsTo(t.tg, 'createChatInviteLink', o.closedChannelId, false);
      expect(created).toHaveLength(1);
      const link = (created[0]!.result as { invite_link: string }).invite_link;
      const sent = callsTo(t.tg, 'sendMessage', o.buyer, false);
      expect(sent).toHaveLength(1);
      expect(buttonUrl(sent[0])).toBe(link);
      expect(access.link).toBe(link);
    } finally {
      await t.svc.db.pool.query('DROP TRIGGER invite_crash ON invites');
    }
  });

  it('a 429 storm on both calls: waits retry_after (bounded), then one link and one message', async () => {
    const o = await paidOrderFixture(t.svc.db);
    t.tg.failNext('createChatInviteLink', { kind: '429', retryAfter: 1 }, 2);
    // More 429s than auto-retry's 3 retries: the job fails, pg-boss retries it, the same link goes out.
    t.tg.failNext('sendMessage', { kind: '429', retryAfter: 1 }, 5);
    await payAndRoute(t.svc.service.engine, o.paymentId, o);
    const access = await waitForAccess(t.svc.db, o.paymentId, ['invited'], 25_000);

    expect(callsTo(t.tg, 'createChatInviteLink', o.closedChannelId)).toHaveLength(1);
    expect(callsTo(t.tg, 'sendMessage', o.buyer, false).map((c) => c.fault?.kind ?? 'ok')).toEqual(['429', '429', '429', '429', '429', 'ok']);
    expect(callsTo(t.tg, 'sendMessage', o.buyer)).toHaveLength(1);
    expect(buttonUrl(callsTo(t.tg, 'sendMessage', o.buyer)[0])).toBe(access.link);
  }, 40_000);

  it('a 5xx burst: job retries with backoff, never a second link, one message', async () => {
    const o = await paidOrderFixture(t.svc.db);
    t.tg.failNext('createChatInviteLink', { kind: '500' }, 2);
    t.tg.failNext('sendMessage', { kind: '500' }, 2);
    await payAndRoute(t.svc.service.engine, o.paymentId, o);
    const access = await waitForAccess(t.svc.db, o.paymentId, ['invited'], 25_000);

    expect(callsTo(t.tg, 'createChatInviteLink', o.closedChannelId, false).map((c) => c.fault?.kind ?? 'ok')).toEqual(['500', '500', 'ok']);
    expect(callsTo(t.tg, 'createChatInviteLink', o.closedChannelId)).toHaveLength(1);
    expect(callsTo(t.tg, 'sendMessage', o.buyer, false).map((c) => c.fault?.kind ?? 'ok')).toEqual(['500', '500', 'ok']);
    expect(buttonUrl(callsTo(t.tg, 'sendMessage', o.buyer)[0])).toBe(access.link);
  }, 40_000);

  it('sendMessage times out after Telegram sent it: not sent again (one link, one message); recorded as delivery unconfirmed', async () => {
    const o = await paidOrderFixture(t.svc.db);
    t.tg.failNext('sendMessage', { kind: 'timeout-after-acting', hangMs: 50 });
    await payAndRoute(t.svc.service.engine, o.paymentId, o);
    const access = await waitForAccess(t.svc.db, o.paymentId, ['undeliverable']);

    expect(callsTo(t.tg, 'createChatInviteLink', o.closedChannelId, false)).toHaveLength(1);
    const sends = callsTo(t.tg, 'sendMessage', o.buyer, false);
    expect(sends).toHaveLength(1);
    expect(sends[0]!.acted).toBe(true);
    expect(access.link).toBe(buttonUrl(sends[0]));
    expect(access.reason).toMatch(/^delivery unconfirmed/);
    expect(access.state).toBe('invited'); // access is done; the success page shows the link
  });

  it('createChatInviteLink times out after Telegram created the link: the unseen link is never sent; one link is sent', async () => {
    const o = await paidOrderFixture(t.svc.db);
    t.tg.failNext('createChatInviteLink', { kind: 'timeout-after-acting', hangMs: 50 });
    await payAndRoute(t.svc.service.engine, o.paymentId, o);
    const access = await waitForAccess(t.svc.db, o.paymentId, ['invited'], 25_000);

    const created = callsTo(t.tg, 'createChatInviteLink', o.closedChannelId);
    // Telegram acted twice: the first answer was lost, so that link's value never reached us.
    expect(created).toHaveLength(2);
    const [lost, kept] = created.map((c) => (c.result as { invite_link: string }).invite_link);
    const sent = callsTo(t.tg, 'sendMessage', o.buyer, false);
    expect(sent).toHaveLength(1);
    expect(buttonUrl(sent[0])).toBe(kept);
    expect(access.link).toBe(kept);
    expect(t.tg.calls.some((c) => JSON.stringify(c.body).includes(lost!))).toBe(false);
    expect(await inviteRow(t.svc.db, o.orderId)).toMatchObject({ create_attempts: 2 });
  });

  it('blocked buyer (403): the link exists, the payment records "invite undeliverable" and why', async () => {
    const o = await paidOrderFixture(t.svc.db);
    t.tg.failNext('sendMessage', { kind: '403', description: 'Forbidden: bot was blocked by the user' });
    await payAndRoute(t.svc.service.engine, o.paymentId, o);
    const access = await waitForAccess(t.svc.db, o.paymentId, ['undeliverable']);

    expect(callsTo(t.tg, 'createChatInviteLink', o.closedChannelId)).toHaveLength(1);
    expect(callsTo(t.tg, 'sendMessage', o.buyer, false)).toHaveLength(1);
    expect(access.link).toBe((callsTo(t.tg, 'createChatInviteLink', o.closedChannelId)[0]!.result as { invite_link: string }).invite_link);
    expect(access.reason).toContain('bot was blocked by the user');
    expect((await inviteRow(t.svc.db, o.orderId))?.undeliverable_reason).toContain('bot was blocked by the user');
  });

  it('400 "chat not found" when creating the link: access parks for review with that reason; nothing is sent', async () => {
    const o = await paidOrderFixture(t.svc.db);
    t.tg.failNext('createChatInviteLink', { kind: '400', description: 'Bad Request: chat not found' });
    await payAndRoute(t.svc.service.engine, o.paymentId, o);
    const access = await waitForAccess(t.svc.db, o.paymentId, ['review']);
    expect(access.state).toBe('needs_review');
    expect(access.review).toContain('chat not found');
    expect(callsTo(t.tg, 'sendMessage', o.buyer, false)).toHaveLength(0);
  });

  it('grants the subscription once and arms its expiry and reminders on the row, enqueuing no job', async () => {
    const o = await paidOrderFixture(t.svc.db, { durationDays: 30 });
    await payAndRoute(t.svc.service.engine, o.paymentId, o);
    await waitForAccess(t.svc.db, o.paymentId, ['invited']);
    const { rows } = await t.svc.db.pool.query(
      `SELECT s.subscription_id, s.expires_at, s.reminders_for, s.next_reminder_at, g.starts_at FROM subscriptions s JOIN subscription_grants g USING (subscription_id) WHERE g.order_id = $1`,
      [o.orderId],
    );
    expect(rows).toHaveLength(1);
    const expires = (rows[0].expires_at as Date).getTime();
    expect(expires - (rows[0].starts_at as Date).getTime()).toBe(30 * 86_400_000);
    // The timers are columns (the subscription sweep acts on them): the 3-day reminder first, for this expiry.
    expect((rows[0].reminders_for as Date).getTime()).toBe(expires);
    expect(expires - (rows[0].next_reminder_at as Date).getTime()).toBe(3 * 86_400_000);
    const jobs = await t.svc.db.pool.query(`SELECT name FROM pgboss.job WHERE name = ANY($1::text[]) AND data->>'subscriptionId' = $2`, [
      [REMINDER_QUEUE, EXPIRY_QUEUE],
      String(rows[0].subscription_id),
    ]);
    expect(jobs.rows).toEqual([]);
  });
});

describe('invite actor, retries exhausted', () => {
  it('keeps failing with 5xx: dead letter, access parked for review, still no second link', async () => {
    const o = await paidOrderFixture(t.svc.db);
    // JOB_RETRY_LIMIT 6: the first run and six retries all meet a 500.
    t.tg.failNext('sendMessage', { kind: '500' }, 7);
    await payAndRoute(t.svc.service.engine, o.paymentId, o);
    const access = await waitForAccess(t.svc.db, o.paymentId, ['review'], 40_000);
    expect(access.review).toContain('invite gave up after its retries');
    expect(callsTo(t.tg, 'createChatInviteLink', o.closedChannelId)).toHaveLength(1);
    expect(callsTo(t.tg, 'sendMessage', o.buyer, false)).toHaveLength(7);
    expect(callsTo(t.tg, 'sendMessage', o.buyer)).toHaveLength(0);
  }, 60_000);
});
