import { Composer, InlineKeyboard, type Context } from 'grammy';
import type pg from 'pg';
import type { Logger } from 'pino';
import { DomainError } from '../domain/errors.js';
import type { OrderService } from '../orders/order.service.js';
import { findChannel } from '../channels/channels.repo.js';
import { activePlansOf, findPlan, plansOfChannels, type PlanRow } from '../channels/plans.repo.js';
import { BUY_PREFIX, PLANS_PREFIX, parseBuyData, payKeyboard, planMatches, plansKeyboard, renewKeyboard } from './keyboards.js';
import { channelTexts } from '../channels/owner-texts.js';
import { formatDate, plansPrompt } from './messages.js';
import { subscriptionsOfBuyer } from './subscriptions.repo.js';

// The buying bot. /start <channel> (the deep link a channel owner publishes: t.me/<bot>?start=<open
// channel id>) shows the channel's plans; tapping one creates the order and its invoice through the
// order service and answers with a pay button (a second tap while that invoice is open answers the same
// order); /status lists the buyer's subscriptions with their end dates and a renew button; /help says
// how to buy and whom to ask. Every failure ends in a message the buyer can act on, never in silence.
// The buyer's Telegram language travels to the pages the bot links to (?lang=).

export interface BuyingBotDeps {
  pool: pg.Pool;
  log: Logger;
  orderService: OrderService;
  /** SUPPORT_CONTACT: a Telegram @handle, an e-mail address or mailto:, or a URL; null when none is configured. */
  supportContact?: string | null | undefined;
}

export const MESSAGES = {
  welcome: 'Hi! Open this bot through the link a channel publishes to buy access. /status shows your subscriptions.',
  unknownChannel: 'This channel is not sold here (or the link is outdated). Please check the link the channel published.',
  noPlans: 'This channel has no plans on sale right now. Please try again later.',
  planGone: 'That plan is no longer available. Send /start again through the channel link to see the current plans.',
  unavailable: 'Purchases are not available right now. Please try again later.',
  failed: 'Sorry, something went wrong on our side. Please try again in a minute.',
  noSubscriptions: 'You have no subscriptions yet.',
  help: 'To buy access, open this bot through the link a channel publishes and choose a plan; pay with crypto and your personal invite arrives here. /status shows your subscriptions and lets you renew them.',
} as const;

/** How the buyer reaches a person, in words ("Telegram @x", "e-mail x@y", a URL), or null. */
export function supportLine(contact: string | null | undefined): string | null {
  const c = contact?.trim();
  if (!c) return null;
  if (/^@\w{4,}$/.test(c)) return `Need help? Write to ${c} on Telegram and quote your order id.`;
  const mail = /^(?:mailto:)?([^\s@]+@[^\s@]+)$/i.exec(c);
  if (mail) return `Need help? E-mail ${mail[1]} and quote your order id.`;
  return `Need help? ${c} (quote your order id).`;
}

/** A deep-link payload names the open channel by its id ("-1001234567890"), optionally prefixed "c". */
export function channelFromPayload(payload: string): string | null {
  const match = /^c?(-?\d{1,20})$/.exec(payload.trim());
  return match?.[1] ?? null;
}

async function showPlans(ctx: Context, pool: pg.Pool, openChannelId: string): Promise<void> {
  const channel = await findChannel(pool, openChannelId);
  if (!channel) {
    await ctx.reply(MESSAGES.unknownChannel);
    return;
  }
  const plans = await activePlansOf(pool, openChannelId);
  if (plans.length === 0) {
    await ctx.reply(MESSAGES.noPlans);
    return;
  }
  // In the owner's words when the channel has them (src/telegram/messages.ts); plain text, no parse_mode.
  await ctx.reply(plansPrompt({ title: channel.title, texts: await channelTexts(pool, openChannelId) }), { reply_markup: plansKeyboard(plans) });
}

function orderErrorMessage(error: unknown): string {
  if (error instanceof DomainError) {
    if (error.kind === 'not_found') return MESSAGES.unknownChannel;
    if (error.kind === 'invalid') return MESSAGES.planGone;
    if (error.kind === 'not_configured' || error.kind === 'unavailable') return MESSAGES.unavailable;
  }
  return MESSAGES.failed;
}

/** The plan a plan button names (its channel and its id, or the id's digest), or null. */
async function planOfButton(pool: pg.Pool, data: string): Promise<PlanRow | null> {
  const ref = parseBuyData(data);
  if (!ref) return null;
  if (!ref.planRef.startsWith('#')) return findPlan(pool, ref.openChannelId, ref.planRef);
  return (await plansOfChannels(pool, [ref.openChannelId])).find((p) => planMatches(p.planId, ref.planRef)) ?? null;
}

export function buyingBot(deps: BuyingBotDeps): Composer<Context> {
  const { pool, log } = deps;
  const bot = new Composer<Context>();
  const privateChats = bot.chatType('private');

  privateChats.command('start', async (ctx) => {
    const payload = ctx.match;
    if (!payload) {
      await ctx.reply(MESSAGES.welcome);
      return;
    }
    const openChannelId = channelFromPayload(payload);
    if (!openChannelId) {
      await ctx.reply(MESSAGES.unknownChannel);
      return;
    }
    await showPlans(ctx, pool, openChannelId);
  });

  privateChats.command('help', async (ctx) => {
    const support = supportLine(deps.supportContact);
    await ctx.reply(support ? `${MESSAGES.help}\n\n${support}` : MESSAGES.help);
  });

  privateChats.command('status', async (ctx) => {
    const subscriptions = await subscriptionsOfBuyer(pool, String(ctx.from.id));
    if (subscriptions.length === 0) {
      await ctx.reply(MESSAGES.noSubscriptions);
      return;
    }
    const now = Date.now();
    const lines = subscriptions.map((s) =>
      s.expiresAt.getTime() > now ? `${s.title}: active until ${formatDate(s.expiresAt)}` : `${s.title}: ended on ${formatDate(s.expiresAt)}`,
    );
    // One renew button per channel, named after it when there are several.
    const keyboard =
      subscriptions.length === 1
        ? renewKeyboard(subscriptions[0]!.openChannelId)
        : subscriptions.reduce((k, s) => k.text(`Renew ${s.title}`, `${PLANS_PREFIX}${s.openChannelId}`).row(), new InlineKeyboard());
    await ctx.reply(lines.join('\n'), { reply_markup: keyboard });
  });

  privateChats.callbackQuery(new RegExp(`^${PLANS_PREFIX}(-?\\d+)$`), async (ctx) => {
    await ctx.answerCallbackQuery();
    await showPlans(ctx, pool, ctx.match[1]!);
  });

  privateChats.callbackQuery(new RegExp(`^${BUY_PREFIX}`), async (ctx) => {
    await ctx.answerCallbackQuery();
    const plan = await planOfButton(pool, ctx.callbackQuery.data);
    if (!plan || !plan.active) {
      await ctx.reply(MESSAGES.planGone);
      return;
    }
    try {
      const order = await deps.orderService.createOrder({
        buyerTelegramId: String(ctx.from.id),
        openChannelId: plan.openChannelId,
        planId: plan.planId,
        source: 'bot',
        lang: ctx.from.language_code,
      });
      const what = `${plan.title}, ${order.priceUsd} USD for ${plan.durationDays} days`;
      const text = order.reused
        ? `You already have an open order for ${what}: here is its invoice again. Pay with crypto below; your invite arrives here once the payment is confirmed.`
        : `Order created: ${what}. Pay with crypto below; your invite arrives here once the payment is confirmed.`;
      await ctx.reply(text, { reply_markup: payKeyboard(order.invoiceUrl, order.statusUrl) });
    } catch (error) {
      log.warn({ err: error, openChannelId: plan.openChannelId, planId: plan.planId }, 'bot could not create an order');
      await ctx.reply(orderErrorMessage(error));
    }
  });

  return bot;
}
