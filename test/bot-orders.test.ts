import type { Update } from 'grammy/types';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CALLBACK_MAX_BYTES } from '../src/telegram/keyboards.js';
import type { TelegramCall } from '../src/sandbox/telegram.fake.js';
import { startTestService, type TestService } from './support/service.js';

// The buying bot against the whole sandbox service: plan ids unique per channel (two channels each
// sell "month"), one open order per buyer and plan (two concurrent taps make one order and answer the
// same invoice), the buyer's language carried to the pages, /help with the support contact.

const ADMIN = 'bot-orders-admin-token-0123456789';
let t: TestService;
let updateId = 1;

beforeAll(async () => {
  t = await startTestService({ ADMIN_TOKEN: ADMIN, SUPPORT_CONTACT: '@telepay_help' }, { effects: [] });
  const base = { title: 'Signals', wallet_address: '0x52908400098527886E0F7030069857D2E4169EE7', currency: 'usdt', network: 'eth', strategy: 'instant', platform_fee_percent: '10' };
  for (const [open, closed, title] of [['-1001', '-2001', 'Signals'], ['-1002', '-2002', 'Alpha']] as const) {
    const res = await fetch(`${t.url}/admin/channels`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      body: JSON.stringify({
        ...base, open_channel_id: open, closed_channel_id: closed, title,
        plans: [
          { plan_id: 'month', title: '1 month', price_usd: open === '-1001' ? '9.99' : '15', duration_days: 30 },
          { plan_id: 'p'.repeat(64), title: 'Long id', price_usd: '20', duration_days: 90 },
        ],
      }),
    });
    expect(res.status).toBe(201);
  }
});
afterAll(async () => {
  await t?.close();
});

const fake = () => t.service.sandbox.telegram!.fake;
const user = (id: number, lang?: string) => ({ id, is_bot: false, first_name: 'Buyer', ...(lang && { language_code: lang }) });
const chat = (id: number) => ({ id, type: 'private' as const, first_name: 'Buyer' });

function command(userId: number, text: string, lang?: string): Update {
  return {
    update_id: updateId++,
    message: { message_id: updateId, date: 0, chat: chat(userId), from: user(userId, lang), text, entities: [{ type: 'bot_command', offset: 0, length: text.split(' ')[0]!.length }] },
  } as Update;
}
function tap(userId: number, data: string, lang?: string): Update {
  return {
    update_id: updateId++,
    callback_query: { id: `cb${updateId}`, chat_instance: 'ci', from: user(userId, lang), message: { message_id: 1, date: 0, chat: chat(userId), text: 'plans' }, data },
  } as Update;
}

const repliesTo = (userId: number): TelegramCall[] => fake().callsOf('sendMessage').filter((c) => c.body.chat_id === userId);
const buttons = (call: TelegramCall | undefined) =>
  ((call?.body.reply_markup as { inline_keyboard?: Array<Array<{ text: string; url?: string; callback_data?: string }>> } | undefined)?.inline_keyboard ?? []).flat();

async function plansOf(userId: number, channel: string) {
  await t.service.bot.handleUpdate(command(userId, `/start ${channel}`));
  return buttons(repliesTo(userId).at(-1));
}

const ordersOf = async (buyer: number) =>
  (await t.db.pool.query<{ order_id: string; open_channel_id: string; plan_id: string; invoice_url: string }>(
    'SELECT order_id, open_channel_id::text, plan_id, invoice_url FROM orders WHERE buyer_telegram_id = $1 ORDER BY created_at', [buyer],
  )).rows;

describe('the buying bot', () => {
  it('names the channel in every plan button (within 64 bytes), so two channels can both sell "month"', async () => {
    const buyer = 5001;
    const first = await plansOf(buyer, '-1001');
    const second = await plansOf(buyer, '-1002');
    expect(first.map((b) => b.callback_data)).toContain('buy:-1001:month');
    expect(second.map((b) => b.callback_data)).toContain('buy:-1002:month');
    for (const b of [...first, ...second]) expect(Buffer.byteLength(b.callback_data!)).toBeLessThanOrEqual(CALLBACK_MAX_BYTES);
    // The 64-character plan id travels as its digest and still buys that plan.
    const long = second.find((b) => b.text.startsWith('Long id'))!;
    expect(long.callback_data).toMatch(/^buy:-1002:#[A-Za-z0-9_-]{16}$/);

    await t.service.bot.handleUpdate(tap(buyer, 'buy:-1001:month'));
    await t.service.bot.handleUpdate(tap(buyer, 'buy:-1002:month'));
    await t.service.bot.handleUpdate(tap(buyer, long.callback_data!));
    expect((await ordersOf(buyer)).map((o) => [o.open_channel_id, o.plan_id])).toEqual([['-1001', 'month'], ['-1002', 'month'], ['-1002', 'p'.repeat(64)]]);
    expect(repliesTo(buyer).at(-3)?.body.text).toMatch(/^Order created: 1 month, 9\.99 USD for 30 days/);
    expect(repliesTo(buyer).at(-2)?.body.text).toMatch(/^Order created: 1 month, 15\.00 USD for 30 days/);
  });

  it('two concurrent taps on one plan make one order, and both answers carry its invoice', async () => {
    const buyer = 5002;
    await Promise.all([t.service.bot.handleUpdate(tap(buyer, 'buy:-1001:month')), t.service.bot.handleUpdate(tap(buyer, 'buy:-1001:month'))]);
    const orders = await ordersOf(buyer);
    expect(orders).toHaveLength(1);
    const answers = repliesTo(buyer);
    expect(answers).toHaveLength(2);
    expect(answers.map((a) => buttons(a).find((b) => b.text === 'Pay')?.url)).toEqual([orders[0]!.invoice_url, orders[0]!.invoice_url]);
    expect(answers.map((a) => String(a.body.text).split(':')[0]).sort()).toEqual(['Order created', 'You already have an open order for 1 month, 9.99 USD for 30 days']);
    // Exactly one invoice was asked of NowPayments for this buyer.
    const invoices = [...t.service.sandbox.nowPayments!.fake.invoices.values()].filter((i) => i.order_id === orders[0]!.order_id);
    expect(invoices).toHaveLength(1);
  });

  it('once the open order is being paid, a tap makes a new order; other buyers never share one', async () => {
    const buyer = 5003;
    await t.service.bot.handleUpdate(tap(buyer, 'buy:-1001:month'));
    await t.service.bot.handleUpdate(tap(5004, 'buy:-1001:month'));
    const [first] = await ordersOf(buyer);
    expect((await ordersOf(5004))[0]!.order_id).not.toBe(first!.order_id);
    const paid = await fetch(`${t.url}/sandbox/orders/${first!.order_id}/pay`, { method: 'POST' });
    expect(paid.status).toBe(200);
    await t.service.bot.handleUpdate(tap(buyer, 'buy:-1001:month'));
    const orders = await ordersOf(buyer);
    expect(orders).toHaveLength(2);
    expect(repliesTo(buyer).at(-1)?.body.text).toMatch(/^Order created/);
  });

  it('carries the buyer\'s Telegram language to the payment status page', async () => {
    const buyer = 5005;
    await t.service.bot.handleUpdate(tap(buyer, 'buy:-1002:month', 'ru'));
    const status = new URL(buttons(repliesTo(buyer).at(-1)).find((b) => b.text === 'Payment status')!.url!);
    expect(status.searchParams.get('lang')).toBe('ru');
    const page = await (await fetch(status)).text();
    expect(page).toContain('<html lang="ru">');
    expect(page).toContain('Ваш платёж');
  });

  it('/help says how to buy and names the support contact; a stale button sends the buyer back to the link', async () => {
    const buyer = 5006;
    await t.service.bot.handleUpdate(command(buyer, '/help'));
    expect(repliesTo(buyer).at(-1)?.body.text).toMatch(/choose a plan[\s\S]*Write to @telepay_help on Telegram and quote your order id/);
    await t.service.bot.handleUpdate(tap(buyer, 'buy:month'));
    expect(repliesTo(buyer).at(-1)?.body.text).toMatch(/no longer available/);
  });
});
