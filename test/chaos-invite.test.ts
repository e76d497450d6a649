import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PENDING_LINK_LIFETIME_MS } from '../src/actors/telegram/invite.actor.js';
import type { EffectActor, EffectContext } from '../src/actors/effect-actor.js';
import type { FakeTelegram } from '../src/sandbox/telegram.fake.js';
import { orphanInviteLinks } from '../src/telegram/invites.repo.js';
import type { TestEngine } from './support/engine.js';
import { buttonUrl, callsTo, inviteRow, paidOrderFixture, payAndRoute, startInviteActorHarness } from './telegram-fixtures.js';

// The invite actor under crashes, one perform at a time: a worker that dies during a 429 wait, an
// earlier attempt that was superseded while it waited, and the links a lost answer or a crash leaves at
// Telegram (recorded before the call, short-lived until stored, counted by orphanInviteLinks).

let e: TestEngine;
let tg: FakeTelegram;
let actor: EffectActor;

beforeAll(async () => {
  // A 2 s request timeout keeps the timeout faults quick.
  ({ e, tg, actor } = await startInviteActorHarness({ timeoutMs: 2_000 }));
});
afterAll(async () => {
  await e?.close();
  await tg?.close();
});

const context = (jobId: string, retryCount: number, signal = new AbortController().signal): EffectContext => ({ signal, log: e.log, jobId, retryCount });
const jobOf = (paymentId: string) => ({ paymentId, effect: 'invite' as const, attempt: 0 });
const linkOf = (call: { result?: unknown } | undefined) => (call?.result as { invite_link: string } | undefined)?.invite_link;

async function attemptsOf(orderId: string) {
  const { rows } = await e.db.pool.query<{ attempt: number; name: string; outcome: string; expire_date: Date; invite_link: string | null }>(
    'SELECT attempt, name, outcome, expire_date, invite_link FROM invite_link_attempts WHERE order_id = $1 ORDER BY attempt',
    [orderId],
  );
  return rows;
}

describe('a definite "not sent" is recorded before the wait', () => {
  it('the worker dies during a 429 wait on sendMessage: the retry sends exactly one DM (not "delivery unconfirmed")', async () => {
    const o = await paidOrderFixture(e.db);
    await payAndRoute(e.engine, o.paymentId, o);
    tg.failNext('sendMessage', { kind: '429', retryAfter: 20 });
    const worker = new AbortController();
    const first = actor.perform(jobOf(o.paymentId), context('job-429', 0, worker.signal)).then(
      () => 'resolved',
      (error: unknown) => error,
    );
    await tg.waitForCall('sendMessage', (c) => String(c.body.chat_id) === o.buyer && c.fault?.kind === '429', { timeoutMs: 10_000 });
    // What a crash right now would leave behind: Telegram answered 429, so nothing went out, and the
    // record already says so (before, send_attempted_at stayed set through auto-retry's wait).
    await expect.poll(async () => (await inviteRow(e.db, o.orderId))?.send_attempted_at, { timeout: 5_000 }).toBeNull();
    const crashed = await inviteRow(e.db, o.orderId);
    expect(crashed).toMatchObject({ sent_at: null, undeliverable_reason: null });
    // The worker dies (pg-boss aborts a job whose worker stopped; a kill -9 leaves the same record).
    worker.abort(new Error('worker killed'));
    expect(await first).toBeInstanceOf(Error);

    const retry = await actor.perform(jobOf(o.paymentId), context('job-429', 1));
    const dms = callsTo(tg, 'sendMessage', o.buyer);
    expect(dms).toHaveLength(1);
    expect(retry).toEqual({ type: 'invite.sent', inviteLink: buttonUrl(dms[0]) });
    expect((await inviteRow(e.db, o.orderId))?.invite_link).toBe(buttonUrl(dms[0]));
    expect(callsTo(tg, 'createChatInviteLink', o.closedChannelId)).toHaveLength(1);
  });

  it('an earlier attempt still alive in its 429 wait when the retry took over (heartbeat lost): it stops; one DM', async () => {
    const o = await paidOrderFixture(e.db);
    await payAndRoute(e.engine, o.paymentId, o);
    tg.failNext('sendMessage', { kind: '429', retryAfter: 2 });
    const stale = actor.perform(jobOf(o.paymentId), context('job-stale', 0)).then(
      () => 'resolved',
      (error: unknown) => error,
    );
    await tg.waitForCall('sendMessage', (c) => String(c.body.chat_id) === o.buyer && c.fault?.kind === '429', { timeoutMs: 10_000 });
    // pg-boss retried the job while the first attempt waited: the retry takes the lease over at once.
    const retry = await actor.perform(jobOf(o.paymentId), context('job-stale', 1));
    expect(retry.type).toBe('invite.sent');
    const outcome = await stale;
    expect(String(outcome)).toMatch(/lease no longer held/);
    expect(callsTo(tg, 'sendMessage', o.buyer)).toHaveLength(1);
  });

  it('a 429 on createChatInviteLink marks that attempt refused before the wait: no orphan is counted', async () => {
    const o = await paidOrderFixture(e.db);
    await payAndRoute(e.engine, o.paymentId, o);
    const before = await orphanInviteLinks(e.db.pool);
    tg.failNext('createChatInviteLink', { kind: '429', retryAfter: 1 });
    expect((await actor.perform(jobOf(o.paymentId), context('job-429c', 0))).type).toBe('invite.sent');
    expect((await attemptsOf(o.orderId)).map((a) => [a.attempt, a.outcome])).toEqual([
      [1, 'refused'],
      [2, 'stored'],
    ]);
    expect(await orphanInviteLinks(e.db.pool)).toBe(before);
  });
});

describe('orphan invite links: recorded before the call, short-lived until stored, counted', () => {
  it('createChatInviteLink answers lost after Telegram acted: that link is short-lived and counted; the next attempt is sent', async () => {
    const o = await paidOrderFixture(e.db);
    await payAndRoute(e.engine, o.paymentId, o);
    const before = await orphanInviteLinks(e.db.pool);
    tg.failNext('createChatInviteLink', { kind: 'timeout-after-acting', hangMs: 4_000 });
    const startedAt = Math.floor(Date.now() / 1000);
    const result = await actor.perform(jobOf(o.paymentId), context('job-lost', 0)).catch((error: unknown) => error);
    // The timeout may end this run (the job retries) or not, depending on nothing but timing: retry it.
    const final = result instanceof Error ? await actor.perform(jobOf(o.paymentId), context('job-lost', 1)) : result;
    expect(final).toMatchObject({ type: 'invite.sent' });

    const created = callsTo(tg, 'createChatInviteLink', o.closedChannelId);
    expect(created.map((c) => c.body.name)).toEqual([`${o.orderId}#1`, `${o.orderId}#2`]);
    const [lost, kept] = created.map(linkOf);
    const lostAtTelegram = tg.inviteLinks.get(lost!)!.link;
    // The unowned link dies within the short lifetime; nobody ever saw it.
    expect(lostAtTelegram.expire_date! - startedAt).toBeLessThanOrEqual(PENDING_LINK_LIFETIME_MS / 1000 + 5);
    expect(lostAtTelegram).toMatchObject({ member_limit: 1, name: `${o.orderId}#1` });
    expect(tg.calls.some((c) => c.method !== 'createChatInviteLink' && JSON.stringify(c.body).includes(lost!))).toBe(false);
    expect((await attemptsOf(o.orderId)).map((a) => [a.attempt, a.outcome, a.invite_link])).toEqual([
      [1, 'lost', null],
      [2, 'stored', kept],
    ]);
    expect(await orphanInviteLinks(e.db.pool)).toBe(before + 1);
    expect(await orphanInviteLinks(e.db.pool, { liveOnly: true })).toBeGreaterThanOrEqual(1);
    // The kept link was extended before it was sent.
    expect(tg.inviteLinks.get(kept!)!.link.expire_date! - startedAt).toBeGreaterThanOrEqual(86_400 - 5);
    expect(buttonUrl(callsTo(tg, 'sendMessage', o.buyer)[0])).toBe(kept);
  });

  it('the worker dies between createChatInviteLink and storing its answer: the retry counts that link lost and sends another', async () => {
    const o = await paidOrderFixture(e.db);
    await payAndRoute(e.engine, o.paymentId, o);
    const before = await orphanInviteLinks(e.db.pool);
    await e.db.pool.query(`
      CREATE SEQUENCE link_crash;
      CREATE FUNCTION link_crash() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.order_id = '${o.orderId}' AND NEW.invite_link IS NOT NULL AND OLD.invite_link IS NULL AND nextval('link_crash') = 1 THEN
          RAISE EXCEPTION 'worker died between creating the link and storing it';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER link_crash BEFORE UPDATE ON invites FOR EACH ROW EXECUTE FUNCTION link_crash();`);
    try {
      await expect(actor.perform(jobOf(o.paymentId), context('job-crash', 0))).rejects.toThrow(/worker died/);
      // A crash leaves the attempt pending; the retry's next attempt turns it into "lost".
      expect((await attemptsOf(o.orderId)).map((a) => a.outcome)).toEqual(['pending']);
      expect((await actor.perform(jobOf(o.paymentId), context('job-crash', 1))).type).toBe('invite.sent');
    } finally {
      await e.db.pool.query('DROP TRIGGER link_crash ON invites; DROP FUNCTION link_crash(); DROP SEQUENCE link_crash');
    }
    const created = callsTo(tg, 'createChatInviteLink', o.closedChannelId);
    expect(created).toHaveLength(2);
    expect((await attemptsOf(o.orderId)).map((a) => a.outcome)).toEqual(['lost', 'stored']);
    expect(await orphanInviteLinks(e.db.pool)).toBe(before + 1);
    expect(buttonUrl(callsTo(tg, 'sendMessage', o.buyer)[0])).toBe(linkOf(created[1]));
  });

  it('the worker dies after storing the link, before extending it: the retry extends that same link, creates none', async () => {
    const o = await paidOrderFixture(e.db);
    await payAndRoute(e.engine, o.paymentId, o);
    await e.db.pool.query(`
      CREATE SEQUENCE extend_crash;
      CREATE FUNCTION extend_crash() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.order_id = '${o.orderId}' AND NEW.extended_at IS NOT NULL AND OLD.extended_at IS NULL AND nextval('extend_crash') = 1 THEN
          RAISE EXCEPTION 'worker died between extending the link and recording it';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER extend_crash BEFORE UPDATE ON invites FOR EACH ROW EXECUTE FUNCTION extend_crash();`);
    try {
      await expect(actor.perform(jobOf(o.paymentId), context('job-ext', 0))).rejects.toThrow(/worker died/);
      expect(await inviteRow(e.db, o.orderId)).toMatchObject({ extended_at: null, send_attempted_at: null });
      expect((await actor.perform(jobOf(o.paymentId), context('job-ext', 1))).type).toBe('invite.sent');
    } finally {
      await e.db.pool.query('DROP TRIGGER extend_crash ON invites; DROP FUNCTION extend_crash(); DROP SEQUENCE extend_crash');
    }
    const chat = o.closedChannelId;
    const methods = tg.calls.filter((c) => String(c.body.chat_id) === chat || String(c.body.chat_id) === o.buyer).map((c) => c.method);
    expect(methods).toEqual(['createChatInviteLink', 'editChatInviteLink', 'editChatInviteLink', 'sendMessage']);
    expect(buttonUrl(callsTo(tg, 'sendMessage', o.buyer)[0])).toBe(linkOf(callsTo(tg, 'createChatInviteLink', chat)[0]));
  });
});
