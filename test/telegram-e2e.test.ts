import type { Update } from 'grammy/types';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeNowPayments, type FakeNowPayments } from '../src/sandbox/nowpayments.fake.js';
import { buyData } from '../src/telegram/keyboards.js';
import { buttonUrl, ids, seedChannel, startTelegramTest, waitForAccess, type TelegramTest } from './telegram-fixtures.js';

// End to end through every module, as `npm start` runs them: the buyer orders in the bot, NowPayments
// (fake) sends signed IPNs to the real webhook, the route actor and the invite actor run as pg-boss
// workers, the invite reaches the fake Bot API over HTTP, and the success page's status API shows it.

const API_KEY = 'tg-e2e-api-key';
const IPN_SECRET = 'tg-e2e-ipn-secret';
const WEBHOOK_SECRET = 'tg-e2e-webhook-secret-0123456789';

let np: FakeNowPayments;
let t: TelegramTest;
beforeAll(async () => {
  np = await startFakeNowPayments({ apiKey: API_KEY, ipnSecret: IPN_SECRET });
  t = await startTelegramTest(
    {
      NOWPAYMENTS_API_URL: np.url,
      NOWPAYMENTS_API_KEY: API_KEY,
      NOWPAYMENTS_IPN_SECRET: IPN_SECRET,
      STATUS_TOKEN_SECRET: 'tg-e2e-status-token-secret-0123456789',
      STATUS_RATE_LIMIT: '100000',
      RECONCILE_EVERY: '0 0 1 1 *',
      TELEGRAM_UPDATES: 'webhook',
      TELEGRAM_WEBHOOK_SECRET: WEBHOOK_SECRET,
    },
    {},
  );
});
afterAll(async () => {
  await t?.close();
  await np?.close();
});

let updateId = 1;
async function update(body: Record<string, unknown>) {
  const res = await fetch(`${t.svc.url}/webhooks/telegram`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': WEBHOOK_SECRET },
    body: JSON.stringify({ update_id: updateId++, ...body } as unknown as Update),
  });
  expect(res.status).toBe(200);
}

const user = (id: number) => ({ id, is_bot: false, first_name: 'Buyer' });
const chat = (id: number) => ({ id, type: 'private', first_name: 'Buyer' });

/** The buyer opens the channel's deep link, taps the plan, and gets the bot's pay button. */
async function orderThroughBot(buyer: number, openChannelId: string, planId: string) {
  const text = `/start ${openChannelId}`;
  await update({ message: { message_id: 1, date: 0, chat: chat(buyer), from: user(buyer), text, entities: [{ type: 'bot_command', offset: 0, length: 6 }] } });
  await update({ callback_query: { id: `cb${updateId}`, chat_instance: 'c', from: user(buyer), message: { message_id: 2, date: 0, chat: chat(buyer), text: 'plans' }, data: buyData(openChannelId, planId) } });
  const reply = t.tg.callsOf('sendMessage').filter((c) => c.body.chat_id === buyer).at(-1);
  expect(reply?.body.text).toMatch(/^Order created/);
  const buttons = (reply?.body.reply_markup as { inline_keyboard: { text: string; url: string }[][] }).inline_keyboard.flat();
  const invoiceUrl = buttons.find((b) => b.text === 'Pay')!.url;
  const statusUrl = new URL(buttons.find((b) => b.text === 'Payment status')!.url);
  const orderId = statusUrl.searchParams.get('order_id')!;
  expect([...np.invoices.values()].find((i) => i.order_id === orderId)?.invoice_url).toBe(invoiceUrl);
  return { orderId, token: statusUrl.searchParams.get('token')! };
}

async function status(orderId: string, token?: string) {
  const query = new URLSearchParams({ order_id: orderId, ...(token !== undefined && { token }) });
  const res = await fetch(`${t.svc.url}/api/payment-status?${query}`);
  expect(res.status).toBe(200);
  return (await res.json()) as { invite: { url: string } | null; invite_undeliverable: boolean; step: string };
}

/** Invite DMs (a button to a t.me/+ link) this buyer received. */
const invitesTo = (buyer: number) => t.tg.callsOf('sendMessage').filter((c) => c.body.chat_id === buyer && buttonUrl(c)?.startsWith('https://t.me/+'));

describe('a paid order end to end', () => {
  it('50 concurrent duplicate IPNs and 1,000 status polls: exactly one createChatInviteLink and one sendMessage', async () => {
    const i = ids();
    const channel = await seedChannel(t.svc.db, i);
    const buyer = Number(i.buyer);
    const { orderId, token } = await orderThroughBot(buyer, channel.openChannelId, channel.planId);

    const paid = np.pay(orderId, { status: 'finished' });
    const ipns = Array.from({ length: 50 }, () => np.sendIpn(paid));
    const polls = Array.from({ length: 1000 }, (_, n) => status(orderId, n % 2 ? token : undefined));
    const answers = await Promise.all(ipns);
    expect(answers.every((a) => a.status === 200)).toBe(true);
    await Promise.all(polls);
    const access = await waitForAccess(t.svc.db, String(paid.payment_id), ['invited']);

    const created = t.tg.callsOf('createChatInviteLink').filter((c) => String(c.body.chat_id) === channel.closedChannelId);
    expect(created).toHaveLength(1);
    expect(invitesTo(buyer)).toHaveLength(1);
    expect(buttonUrl(invitesTo(buyer)[0])).toBe(access.link);

    // And more polls after the invite: still one of each.
    await Promise.all(Array.from({ length: 100 }, () => status(orderId, token)));
    expect((await status(orderId, token)).invite?.url).toBe(access.link);
    expect((await status(orderId)).invite).toBeNull();
    expect(t.tg.callsOf('createChatInviteLink').filter((c) => String(c.body.chat_id) === channel.closedChannelId)).toHaveLength(1);
    expect(invitesTo(buyer)).toHaveLength(1);
  });

  it('a buyer who blocked the bot: undeliverable recorded, the link on the success page with the token, not without', async () => {
    const i = ids();
    const channel = await seedChannel(t.svc.db, i);
    const buyer = Number(i.buyer);
    const { orderId, token } = await orderThroughBot(buyer, channel.openChannelId, channel.planId);
    t.tg.failNext('sendMessage', { kind: '403', description: 'Forbidden: bot was blocked by the user' });

    const paid = np.pay(orderId, { status: 'finished' });
    expect((await np.sendIpn(paid)).status).toBe(200);
    const access = await waitForAccess(t.svc.db, String(paid.payment_id), ['undeliverable']);
    expect(access.reason).toContain('bot was blocked by the user');

    const withToken = await status(orderId, token);
    expect(withToken.invite?.url).toBe(access.link);
    expect(withToken.invite_undeliverable).toBe(true);
    const withoutToken = await status(orderId);
    expect(withoutToken.invite).toBeNull();
    expect(JSON.stringify(withoutToken)).not.toContain(access.link!);
  });
});
