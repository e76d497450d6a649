import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buttonUrl, callsTo, inviteRow, paidOrderFixture, payAndRoute, startTelegramTest, waitForAccess, type TelegramTest } from './telegram-fixtures.js';

// operator.reinvite (a link a stranger used, a buyer who lost the DM): the old link is revoked and the
// buyer gets a new one, once per operator action, however often the job or the event is replayed.

let t: TelegramTest;
beforeAll(async () => {
  t = await startTelegramTest({ JOB_RETRY_LIMIT: '3', INVITE_EXPIRE_AFTER: '1d' });
});
afterAll(async () => {
  await t?.close();
});

describe('re-issuing an invite', () => {
  it('revokes the sent link and DMs one new link; 10 concurrent operator events apply once', async () => {
    const o = await paidOrderFixture(t.svc.db);
    const { engine } = t.svc.service;
    await payAndRoute(engine, o.paymentId, o);
    const first = await waitForAccess(t.svc.db, o.paymentId, ['invited']);

    const reinvite = () => engine.applyEvent(o.paymentId, { type: 'operator.reinvite', by: 'ops', reason: 'a stranger used the link' } as never, { source: 'operator:ops' });
    // The invite row is held while the 10 land, so the re-issued invite cannot finish in between (an
    // operator event after it is a new request, not a concurrent one): all 10 race for one version.
    const hold = await t.svc.db.pool.connect();
    await hold.query('BEGIN');
    await hold.query('SELECT 1 FROM invites WHERE order_id = $1 FOR UPDATE', [o.orderId]);
    try {
      const results = await Promise.all(Array.from({ length: 10 }, reinvite));
      expect(results.filter((r) => r.outcome === 'applied')).toHaveLength(1);
    } finally {
      await hold.query('COMMIT');
      hold.release();
    }

    await vi.waitFor(
      async () => {
        const row = await inviteRow(t.svc.db, o.orderId);
        expect(row?.invite_attempt).toBe(1);
        expect(row?.sent_at).not.toBeNull();
        expect(row?.invite_link).not.toBe(first.link);
      },
      { timeout: 20_000, interval: 100 },
    );
    const second = await waitForAccess(t.svc.db, o.paymentId, ['invited']);
    expect(second.link).not.toBe(first.link);

    const dms = callsTo(t.tg, 'sendMessage', o.buyer);
    expect(dms.map(buttonUrl)).toEqual([first.link, second.link]);
    const revoked = callsTo(t.tg, 'revokeChatInviteLink', o.closedChannelId).map((c) => c.body.invite_link);
    expect(revoked).toContain(first.link);
    expect(callsTo(t.tg, 'createChatInviteLink', o.closedChannelId)).toHaveLength(2);
    expect((await inviteRow(t.svc.db, o.orderId))?.replaced_links).toBe(1);
  });
});
