import type { Update } from 'grammy/types';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MESSAGES } from '../src/telegram/bot.js';
import { callsTo, inviteRow, paidOrderFixture, payAndRoute, startTelegramTest, waitForAccess, type TelegramTest } from './telegram-fixtures.js';

// Updates from Telegram: join tracking (revoke after the buyer joined, remove anyone else) and the
// buying bot, through the webhook (secret token checked) and through long polling.

const SECRET = 'webhook-secret-for-tests-0123456789';

async function post(t: TelegramTest, update: Update, secret: string | null = SECRET) {
  const res = await fetch(`${t.svc.url}/webhooks/telegram`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(secret !== null && { 'x-telegram-bot-api-secret-token': secret }) },
    body: JSON.stringify(update),
  });
  return res.status;
}

let updateId = 1;
function command(userId: number, text: string): Update {
  const name = text.split(' ')[0]!;
  return {
    update_id: updateId++,
    message: {
      message_id: updateId,
      date: Math.floor(Date.now() / 1000),
      chat: { id: userId, type: 'private', first_name: 'Buyer' },
      from: { id: userId, is_bot: false, first_name: 'Buyer' },
      text,
      entities: [{ type: 'bot_command', offset: 0, length: name.length }],
    },
  } as Update;
}

function tap(userId: number, data: string): Update {
  return {
    update_id: updateId++,
    callback_query: {
      id: `cb${updateId}`,
      chat_instance: 'ci',
      from: { id: userId, is_bot: false, first_name: 'Buyer' },
      message: { message_id: 1, date: Math.floor(Date.now() / 1000), chat: { id: userId, type: 'private', first_name: 'Buyer' }, text: 'plans' },
      data,
    },
  } as Update;
}

async function invited(t: TelegramTest) {
  const o = await paidOrderFixture(t.svc.db);
  await payAndRoute(t.svc.service.engine, o.paymentId, o);
  const access = await waitForAccess(t.svc.db, o.paymentId, ['invited']);
  return { ...o, link: access.link! };
}

const lastText = (t: TelegramTest, userId: string | number) => callsTo(t.tg, 'sendMessage', userId).at(-1)?.body.text;

describe('webhook updates', () => {
  let t: TelegramTest;
  beforeAll(async () => {
    t = await startTelegramTest({ TELEGRAM_UPDATES: 'webhook', TELEGRAM_WEBHOOK_SECRET: SECRET });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('registers the webhook with its secret and asks for chat_member updates', async () => {
    const call = await t.tg.waitForCall('setWebhook');
    expect(call.body).toMatchObject({ url: `${t.svc.url}/webhooks/telegram`, secret_token: SECRET });
    expect(call.body.allowed_updates).toContain('chat_member');
  });

  it('refuses an update without the right secret token, and acts on none of it', async () => {
    const o = await invited(t);
    const join = t.tg.simulateJoin(Number(o.closedChannelId), Number(o.buyer), o.link);
    expect(await post(t, join, null)).toBe(401);
    expect(await post(t, join, `${SECRET.slice(0, -1)}x`)).toBe(401);
    expect((await inviteRow(t.svc.db, o.orderId))?.joined_by).toBeNull();
    expect(t.tg.callsOf('revokeChatInviteLink').filter((c) => c.body.invite_link === o.link)).toHaveLength(0);
  });

  it('the buyer joins through their link: the join is recorded and the link revoked', async () => {
    const o = await invited(t);
    const join = t.tg.simulateJoin(Number(o.closedChannelId), Number(o.buyer), o.link);
    expect(await post(t, join)).toBe(200);
    const row = await inviteRow(t.svc.db, o.orderId);
    expect(row).toMatchObject({ joined_by: o.buyer, revoke_reason: 'used by the buyer' });
    expect(t.tg.inviteLinks.get(o.link)?.link.is_revoked).toBe(true);
    // Telegram redelivers: nothing changes and nothing fails.
    expect(await post(t, join)).toBe(200);
    expect((await inviteRow(t.svc.db, o.orderId))?.joined_at).toEqual(row?.joined_at);
  });

  it('the buyer joins through a link made before their access was revoked: removed, and the link revoked', async () => {
    const o = await invited(t);
    // An admin revoked the access meanwhile (the subscription was ended and marked removed).
    await t.svc.db.pool.query(
      `UPDATE subscriptions SET expires_at = now(), removed_at = now() WHERE buyer_telegram_id = $1 AND open_channel_id = $2`,
      [o.buyer, o.openChannelId],
    );
    const join = t.tg.simulateJoin(Number(o.closedChannelId), Number(o.buyer), o.link);
    expect(await post(t, join)).toBe(200);
    expect(t.tg.members.get(Number(o.closedChannelId))?.has(Number(o.buyer))).toBe(false);
    expect(t.tg.inviteLinks.get(o.link)?.link.is_revoked).toBe(true);
    expect((await inviteRow(t.svc.db, o.orderId))?.revoke_reason).toMatch(/after their access had ended or been revoked/);
  });

  it('someone else joins through the buyer\'s link: they are removed and the link revoked', async () => {
    const o = await invited(t);
    const intruder = Number(o.buyer) + 5_000_000;
    const join = t.tg.simulateJoin(Number(o.closedChannelId), intruder, o.link);
    expect(await post(t, join)).toBe(200);
    expect(t.tg.members.get(Number(o.closedChannelId))?.has(intruder)).toBe(false);
    expect(t.tg.banned.get(Number(o.closedChannelId))?.has(intruder) ?? false).toBe(false);
    expect(t.tg.inviteLinks.get(o.link)?.link.is_revoked).toBe(true);
    const row = await inviteRow(t.svc.db, o.orderId);
    expect(row?.joined_by).toBeNull();
    expect(row?.revoke_reason).toContain(String(intruder));
  });

  it('/start with a channel payload shows its plans; a tap on a plan without an order service says purchases are unavailable', async () => {
    const o = await paidOrderFixture(t.svc.db);
    expect(await post(t, command(Number(o.buyer), `/start ${o.openChannelId}`))).toBe(200);
    const plans = callsTo(t.tg, 'sendMessage', o.buyer).at(-1);
    expect(plans?.body.text).toContain(o.channel.title);
    expect(JSON.stringify(plans?.body.reply_markup)).toContain(`buy:${o.openChannelId}:${o.planId}`);

    expect(await post(t, tap(Number(o.buyer), `buy:${o.openChannelId}:${o.planId}`))).toBe(200);
    expect(lastText(t, o.buyer)).toBe(MESSAGES.unavailable);
    expect(t.tg.callsOf('answerCallbackQuery').length).toBeGreaterThan(0);
  });

  it('friendly answers: /start alone, an unknown channel, an unknown plan', async () => {
    const user = 987_654_321;
    await post(t, command(user, '/start'));
    expect(lastText(t, user)).toBe(MESSAGES.welcome);
    await post(t, command(user, '/start -100999999999999'));
    expect(lastText(t, user)).toBe(MESSAGES.unknownChannel);
    await post(t, command(user, '/start not-a-channel'));
    expect(lastText(t, user)).toBe(MESSAGES.unknownChannel);
    await post(t, tap(user, 'buy:-1001:no-such-plan'));
    expect(lastText(t, user)).toBe(MESSAGES.planGone);
    // A button from before plan ids were per channel (no channel in it): the buyer is sent back to the link.
    await post(t, tap(user, 'buy:no-such-plan'));
    expect(lastText(t, user)).toBe(MESSAGES.planGone);
    await post(t, command(user, '/status'));
    expect(lastText(t, user)).toBe(MESSAGES.noSubscriptions);
  });

  it('/status lists the buyer\'s subscriptions with their expiry and a renew button', async () => {
    const o = await invited(t);
    await post(t, command(Number(o.buyer), '/status'));
    const status = callsTo(t.tg, 'sendMessage', o.buyer).at(-1);
    expect(status?.body.text).toMatch(new RegExp(`${o.channel.title}: active until \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2} UTC`));
    expect(JSON.stringify(status?.body.reply_markup)).toContain(`plans:${o.openChannelId}`);
  });

  it('a bot reply that fails is answered 200 after telling the buyer (no redelivery that could repeat an order)', async () => {
    const user = 987_654_322;
    t.tg.failNext('sendMessage', { kind: '400', description: 'Bad Request: something odd' });
    expect(await post(t, command(user, '/start'))).toBe(200);
    expect(lastText(t, user)).toBe(MESSAGES.failed);
  });
});

describe('long polling', () => {
  let t: TelegramTest;
  beforeAll(async () => {
    t = await startTelegramTest({ TELEGRAM_UPDATES: 'polling' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('join tracking works the same through getUpdates', async () => {
    const o = await invited(t);
    t.tg.pushUpdate(t.tg.simulateJoin(Number(o.closedChannelId), Number(o.buyer), o.link));
    await vi.waitFor(async () => expect((await inviteRow(t.svc.db, o.orderId))?.joined_by).toBe(o.buyer), { timeout: 10_000, interval: 50 });
    await vi.waitFor(() => expect(t.tg.inviteLinks.get(o.link)?.link.is_revoked).toBe(true), { timeout: 5_000, interval: 20 });
    const polls = t.tg.callsOf('getUpdates');
    expect(JSON.stringify(polls[0]?.body.allowed_updates)).toContain('chat_member');
  });
});
