import { InlineKeyboard } from 'grammy';
import type { PlanRow } from '../channels/plans.repo.js';

// Inline keyboards the bot sends, and the callback data its handlers parse (Telegram caps it at 64 bytes).

export const PLANS_PREFIX = 'plans:';
export const BUY_PREFIX = 'buy:';
const CALLBACK_MAX_BYTES = 64;

export const openChannelKeyboard = (inviteLink: string) => new InlineKeyboard().url('Open the channel', inviteLink);

export const renewKeyboard = (openChannelId: string) => new InlineKeyboard().text('Renew', `${PLANS_PREFIX}${openChannelId}`);

/** One button per plan; a plan whose id would not fit Telegram's callback limit is left out rather than sent truncated. */
export function plansKeyboard(plans: Pick<PlanRow, 'planId' | 'title' | 'priceUsd' | 'durationDays'>[]): InlineKeyboard {
  const keyboard = new InlineKeyboard();
  for (const plan of plans) {
    const data = `${BUY_PREFIX}${plan.planId}`;
    if (Buffer.byteLength(data) > CALLBACK_MAX_BYTES) continue;
    keyboard.text(`${plan.title}: ${plan.priceUsd} USD / ${plan.durationDays} days`, data).row();
  }
  return keyboard;
}

export const payKeyboard = (invoiceUrl: string, statusUrl: string) => new InlineKeyboard().url('Pay', invoiceUrl).row().url('Payment status', statusUrl);
