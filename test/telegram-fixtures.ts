import { randomUUID } from 'node:crypto';
import { expect, vi } from 'vitest';
import { createInviteActor } from '../src/actors/telegram/invite.actor.js';
import type { Engine } from '../src/persistence/apply-event.js';
import type { PaymentEvent, Route } from '../src/machines/payment.events.js';
import { startFakeTelegram, type FakeTelegram, type TelegramCall } from '../src/sandbox/telegram.fake.js';
import type { ServiceOptions } from '../src/service.js';
import { createTelegramBot } from '../src/telegram/client.js';
import { subscriptionQueues } from '../src/telegram/subscriptions.service.js';
import { startTestEngine } from './support/engine.js';
import type { TestDatabase } from './support/database.js';
import { notRun } from './support/intake.js';
import { startTestService, type TestService } from './support/service.js';

// Shared set-up for the Telegram tests: the service (only the invite actor and no payments provider, unless told otherwise)
// against the fake Bot API over HTTP, and channel/plan/order rows written the way the admin API and
// the order service write them.

export const TOKEN = '424242:telegram-test-token';

export interface TelegramTest {
  tg: FakeTelegram;
  svc: TestService;
  close(): Promise<void>;
}

/** The service with the invite actor alone; the owner's payout stays a queued job nobody works (access is studied here). */
export async function startTelegramTest(
  env: Record<string, string> = {},
  options: ServiceOptions = { effects: ['invite'], nowPayments: null, actors: { accumulate: notRun('accumulate') } },
): Promise<TelegramTest> {
  const tg = await startFakeTelegram({ token: TOKEN });
  const svc = await startTestService({ TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: tg.apiRoot, ...env }, options);
  return {
    tg,
    svc,
    async close() {
      await svc.close();
      await tg.close();
    },
  };
}

let counter = 0;
/** Distinct ids per test: Telegram-like negative channel ids, positive user ids, numeric payment ids. */
export function ids() {
  counter += 1;
  const n = Date.now() % 1_000_000_000;
  return {
    openChannelId: String(-1_000_000_000_000 - n * 100 - counter),
    closedChannelId: String(-2_000_000_000_000 - n * 100 - counter),
    buyer: String(10_000_000 + (n % 1_000_000) * 100 + counter),
    planId: `plan-${counter}-${randomUUID().slice(0, 8)}`,
    orderId: `ord_test_${counter}_${randomUUID().slice(0, 8)}`,
    paymentId: `${n}${counter}${Math.floor(Math.random() * 1000)}`,
  };
}

export interface Seeded {
  openChannelId: string;
  closedChannelId: string;
  planId: string;
  durationDays: number;
  title: string;
}

export async function seedChannel(db: TestDatabase, s: { openChannelId: string; closedChannelId: string; planId: string; durationDays?: number; title?: string }): Promise<Seeded> {
  const title = s.title ?? `Channel ${s.openChannelId}`;
  const durationDays = s.durationDays ?? 30;
  await db.pool.query(
    `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network, payout_strategy, threshold_usd)
     VALUES ($1, $2, $3, '0x0000000000000000000000000000000000000001', 'usdt', 'trx', 'threshold', 100)`,
    [s.openChannelId, s.closedChannelId, title],
  );
  await db.pool.query(`INSERT INTO plans (plan_id, open_channel_id, title, price_usd, duration_days) VALUES ($1, $2, $3, '10.00', $4)`, [
    s.planId,
    s.openChannelId,
    `${durationDays} days`,
    durationDays,
  ]);
  return { openChannelId: s.openChannelId, closedChannelId: s.closedChannelId, planId: s.planId, durationDays, title };
}

export async function seedOrder(db: TestDatabase, o: { orderId: string; buyer: string; openChannelId: string; planId: string }): Promise<void> {
  await db.pool.query(`INSERT INTO orders (order_id, buyer_telegram_id, open_channel_id, plan_id, price_usd, source) VALUES ($1, $2, $3, $4, '10.00', 'api')`, [
    o.orderId,
    o.buyer,
    o.openChannelId,
    o.planId,
  ]);
}

export const finished = (orderId: string): PaymentEvent => ({
  type: 'np.finished',
  facts: { orderId, payAmount: '10', actuallyPaid: '10', payCurrency: 'usdttrc20', priceAmount: '10', priceCurrency: 'usd' },
});

export const routeOf = (o: { orderId: string; openChannelId: string; planId: string; buyer: string }): Route => ({
  orderId: o.orderId,
  channelId: o.openChannelId,
  planId: o.planId,
  buyerTelegramId: o.buyer,
  strategy: 'threshold',
  ownerShareUsd: '9',
  feeUsd: '1',
});

/** What the route actor does for a paid order, applied through the engine's one path. */
export async function payAndRoute(engine: Engine, paymentId: string, o: { orderId: string; openChannelId: string; planId: string; buyer: string }) {
  await engine.applyEvent(paymentId, finished(o.orderId), { source: 'ipn' });
  await engine.applyEvent(paymentId, { type: 'route.done', route: routeOf(o) }, { source: 'actor:route' });
}

/** A paid order ready to invite: channel, plan, order rows for a fresh buyer. */
export async function paidOrderFixture(db: TestDatabase, options: { durationDays?: number } = {}) {
  const i = ids();
  const channel = await seedChannel(db, { ...i, ...(options.durationDays !== undefined && { durationDays: options.durationDays }) });
  await seedOrder(db, i);
  return { ...i, channel };
}

export async function accessOf(db: TestDatabase, paymentId: string) {
  const { rows } = await db.pool.query<{ access: string | null; link: string | null; reason: string | null; state: string; review: string | null }>(
    `SELECT state_value->'routed'->>'access' AS access, snapshot->'context'->'access'->>'inviteLink' AS link,
            snapshot->'context'->'access'->>'undeliverableReason' AS reason, state, review_reason AS review
       FROM payments WHERE payment_id = $1`,
    [paymentId],
  );
  return rows[0]!;
}

export async function waitForAccess(db: TestDatabase, paymentId: string, states: string[], timeout = 20_000) {
  await vi.waitFor(async () => expect(states).toContain((await accessOf(db, paymentId)).access), { timeout, interval: 50 });
  return accessOf(db, paymentId);
}

export const callsTo = (tg: FakeTelegram, method: string, chatId: string | number, acted = true): TelegramCall[] =>
  tg.callsOf(method).filter((c) => String(c.body.chat_id) === String(chatId) && (!acted || c.acted));

/** The URL of the "Open the channel" button in a sendMessage call. */
export function buttonUrl(call: TelegramCall | undefined): string | undefined {
  const markup = call?.body.reply_markup as { inline_keyboard?: { url?: string; text: string }[][] } | undefined;
  return markup?.inline_keyboard?.flat().find((b) => b.url)?.url;
}

export async function inviteRow(db: TestDatabase, orderId: string) {
  const { rows } = await db.pool.query('SELECT * FROM invites WHERE order_id = $1', [orderId]);
  return rows[0] as Record<string, unknown> | undefined;
}

/**
 * The invite actor on a test engine and a fake Bot API, driven one perform at a time (no workers), so a
 * test can change the world between two attempts exactly where it means to.
 */
export async function startInviteActorHarness(options: { timeoutMs: number }) {
  const e = await startTestEngine();
  // The template database has the engine's queues; the module's own are created by the service, so here by hand.
  for (const [name, queue] of Object.entries(subscriptionQueues)) await e.boss.createQueue(name, queue);
  const tg = await startFakeTelegram({ token: TOKEN });
  const bot = createTelegramBot({ token: TOKEN, apiRoot: tg.apiRoot, timeoutMs: options.timeoutMs, botInfo: tg.botInfo });
  const actor = createInviteActor({ pool: e.db.pool, boss: e.boss, api: bot.api, log: e.log, inviteExpireAfterMs: 86_400_000, leaseMs: 300_000, remindersMs: [] });
  return { e, tg, actor };
}
