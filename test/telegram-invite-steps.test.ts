import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EffectActor, EffectContext } from '../src/actors/effect-actor.js';
import { loadConfig } from '../src/config.js';
import type { FakeTelegram } from '../src/sandbox/telegram.fake.js';
import type { TestEngine } from './support/engine.js';
import { startTestService } from './support/service.js';
import { buttonUrl, callsTo, inviteRow, paidOrderFixture, payAndRoute, waitForAccess, startInviteActorHarness } from './telegram-fixtures.js';

// The invite actor's step-level idempotency, driven one perform at a time (no workers), so each test
// can change the world between two attempts exactly where it means to.

let e: TestEngine;
let tg: FakeTelegram;
let actor: EffectActor;

beforeAll(async () => {
  ({ e, tg, actor } = await startInviteActorHarness({ timeoutMs: 5_000 }));
});
afterAll(async () => {
  await e?.close();
  await tg?.close();
});

const context = (jobId: string): EffectContext => ({ signal: new AbortController().signal, log: e.log, jobId, retryCount: 0 });

describe('invite actor steps', () => {
  it('a stored link that expired before it was sent is revoked first, then replaced; the new one is sent', async () => {
    const o = await paidOrderFixture(e.db);
    await payAndRoute(e.engine, o.paymentId, o);
    const job = { paymentId: o.paymentId, effect: 'invite' as const, attempt: 0 };
    tg.failNext('sendMessage', { kind: '500' });
    await expect(actor.perform(job, context('job-1'))).rejects.toThrow();
    const old = (await inviteRow(e.db, o.orderId))?.invite_link as string;
    expect(old).toBeTruthy();

    await e.db.pool.query(`UPDATE invites SET expire_date = now() - interval '1 minute' WHERE order_id = $1`, [o.orderId]);
    const result = await actor.perform(job, context('job-1'));

    const chat = o.closedChannelId;
    const methods = tg.calls.filter((c) => String(c.body.chat_id) === chat || String(c.body.chat_id) === o.buyer).map((c) => c.method);
    expect(methods).toEqual(['createChatInviteLink', 'editChatInviteLink', 'sendMessage', 'revokeChatInviteLink', 'createChatInviteLink', 'editChatInviteLink', 'sendMessage']);
    expect(callsTo(tg, 'revokeChatInviteLink', chat)[0]?.body.invite_link).toBe(old);
    const fresh = (callsTo(tg, 'createChatInviteLink', chat)[1]?.result as { invite_link: string }).invite_link;
    expect(result).toEqual({ type: 'invite.sent', inviteLink: fresh });
    expect(buttonUrl(callsTo(tg, 'sendMessage', o.buyer)[0])).toBe(fresh);
    expect(await inviteRow(e.db, o.orderId)).toMatchObject({ invite_link: fresh, replaced_links: 1 });
  });

  it('a retry after the send was confirmed reports the same link and calls Telegram for nothing', async () => {
    const o = await paidOrderFixture(e.db);
    await payAndRoute(e.engine, o.paymentId, o);
    const job = { paymentId: o.paymentId, effect: 'invite' as const, attempt: 0 };
    const first = await actor.perform(job, context('job-2'));
    const calls = tg.calls.length;
    expect(await actor.perform(job, context('job-2'))).toEqual(first);
    expect(await actor.perform(job, context('job-3'))).toEqual(first);
    expect(tg.calls.length).toBe(calls);
    // A newer attempt after a sent invite is an operator's re-issue (operator.reinvite): see
    // test/telegram-reinvite.test.ts; it replaces the link once, and its own retries call nothing.
    const reissued = await actor.perform({ ...job, attempt: 1 }, context('job-4'));
    expect(reissued).toMatchObject({ type: 'invite.sent' });
    expect(reissued).not.toEqual(first);
    const afterReissue = tg.calls.length;
    expect(await actor.perform({ ...job, attempt: 1 }, context('job-4'))).toEqual(reissued);
    expect(tg.calls.length).toBe(afterReissue);
  });

  it('two jobs for the same order at once (a stuck job pg-boss expired, a second payment): one link, one message', async () => {
    const o = await paidOrderFixture(e.db);
    await payAndRoute(e.engine, o.paymentId, o);
    const job = { paymentId: o.paymentId, effect: 'invite' as const, attempt: 0 };
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => actor.perform(job, context(`job-x${i}`))));
    const sent = outcomes.filter((r) => r.status === 'fulfilled');
    expect(sent.length).toBeGreaterThanOrEqual(1);
    for (const r of outcomes) if (r.status === 'rejected') expect(String(r.reason)).toContain('another job is delivering');
    expect(callsTo(tg, 'createChatInviteLink', o.closedChannelId, false)).toHaveLength(1);
    expect(callsTo(tg, 'sendMessage', o.buyer, false)).toHaveLength(1);
  });

  it('a timeout before Telegram acted on sendMessage is still not resent: at most one DM, the link stays on the success page', async () => {
    const o = await paidOrderFixture(e.db);
    await payAndRoute(e.engine, o.paymentId, o);
    tg.failNext('sendMessage', { kind: 'timeout-before-acting', hangMs: 50 });
    const result = await actor.perform({ paymentId: o.paymentId, effect: 'invite', attempt: 0 }, context('job-4'));
    expect(result).toMatchObject({ type: 'invite.undeliverable', reason: expect.stringMatching(/^delivery unconfirmed/) });
    expect(callsTo(tg, 'sendMessage', o.buyer, false)).toHaveLength(1);
  });

  it('a channel that is not configured fails the invite with a reason instead of retrying', async () => {
    const o = await paidOrderFixture(e.db);
    await e.engine.applyEvent(o.paymentId, { type: 'np.finished', facts: { orderId: o.orderId, payAmount: '1', actuallyPaid: '1' } }, { source: 'ipn' });
    await e.engine.applyEvent(
      o.paymentId,
      { type: 'route.done', route: { orderId: o.orderId, channelId: '-100424242', planId: o.planId, buyerTelegramId: o.buyer, strategy: 'threshold', ownerShareUsd: '1', feeUsd: '0' } },
      { source: 'actor:route' },
    );
    const result = await actor.perform({ paymentId: o.paymentId, effect: 'invite', attempt: 0 }, context('job-5'));
    expect(result).toEqual({ type: 'invite.failed', reason: 'channel -100424242 is not configured: add it, then retry' });
  });
});

describe('sandbox', () => {
  it('without a bot token (not production) the service uses an in-process fake Bot API and invites go to it', async () => {
    const svc = await startTestService({}, { effects: ['invite'] });
    try {
      const o = await paidOrderFixture(svc.db);
      await payAndRoute(svc.service.engine, o.paymentId, o);
      const access = await waitForAccess(svc.db, o.paymentId, ['invited']);
      const fake: FakeTelegram = svc.service.sandbox.telegram!.fake;
      expect(buttonUrl(callsTo(fake, 'sendMessage', o.buyer)[0])).toBe(access.link);
    } finally {
      await svc.close();
    }
  });

  it('in production a missing TELEGRAM_BOT_TOKEN stops the start with the reason', async () => {
    const env = { NODE_ENV: 'production', NOWPAYMENTS_IPN_SECRET: 'x'.repeat(32), STATUS_TOKEN_SECRET: 'y'.repeat(32) };
    expect(loadConfig(env).TELEGRAM_BOT_TOKEN).toBeUndefined();
    await expect(startTestService(env, { effects: ['invite'] })).rejects.toThrow(/TELEGRAM_BOT_TOKEN is required in production/);
  });
});
