import { createHash } from 'node:crypto';
import { InlineKeyboard } from 'grammy';
import type { PlanRow } from '../channels/plans.repo.js';

// Inline keyboards the bot sends, and the callback data its handlers parse (Telegram caps it at 64 bytes).
//
// Plan ids are unique per channel only, so a plan button names both: "buy:<open channel id>:<plan id>".
// A channel id is at most 20 characters, which leaves 39 bytes for the plan id; a longer id (they may
// be 64) is sent as "#" + 16 characters of its SHA-256 (96 bits) and found among the channel's plans.
// Every button fits; none is left out.

export const PLANS_PREFIX = 'plans:';
export const BUY_PREFIX = 'buy:';
export const CALLBACK_MAX_BYTES = 64;

export const openChannelKeyboard = (inviteLink: string) => new InlineKeyboard().url('Open the channel', inviteLink);

export const renewKeyboard = (openChannelId: string) => new InlineKeyboard().text('Renew', `${PLANS_PREFIX}${openChannelId}`);

/** The short form of a plan id too long for the callback data. */
export const planIdDigest = (planId: string): string => `#${createHash('sha256').update(planId).digest('base64url').slice(0, 16)}`;

/** The callback data of a plan button: always within Telegram's 64 bytes. */
export function buyData(openChannelId: string, planId: string): string {
  const data = `${BUY_PREFIX}${openChannelId}:${planId}`;
  return Buffer.byteLength(data) <= CALLBACK_MAX_BYTES ? data : `${BUY_PREFIX}${openChannelId}:${planIdDigest(planId)}`;
}

export const BUY_DATA = new RegExp(`^${BUY_PREFIX}(-?\\d{1,20}):(#[A-Za-z0-9_-]{16}|[A-Za-z0-9_-]{1,64})$`);

/** The channel and the plan id (or its digest, starting with "#") a plan button names; null for anything else, such as a button from before plan ids were per channel. */
export function parseBuyData(data: string): { openChannelId: string; planRef: string } | null {
  const match = BUY_DATA.exec(data);
  return match ? { openChannelId: match[1]!, planRef: match[2]! } : null;
}

/** Whether a plan is the one a button's plan reference names. */
export const planMatches = (planId: string, planRef: string): boolean => (planRef.startsWith('#') ? planIdDigest(planId) === planRef : planId === planRef);

/** One button per plan. */
export function plansKeyboard(plans: Pick<PlanRow, 'openChannelId' | 'planId' | 'title' | 'priceUsd' | 'durationDays'>[]): InlineKeyboard {
  const keyboard = new InlineKeyboard();
  for (const plan of plans) keyboard.text(`${plan.title}: ${plan.priceUsd} USD / ${plan.durationDays} days`, buyData(plan.openChannelId, plan.planId)).row();
  return keyboard;
}

export const payKeyboard = (invoiceUrl: string, statusUrl: string) => new InlineKeyboard().url('Pay', invoiceUrl).row().url('Payment status', statusUrl);
