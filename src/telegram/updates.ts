import type { Bot, BotError } from 'grammy';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { MESSAGES } from './bot.js';

// How updates reach the bot (webhook or long polling) and what a failed update tells the buyer.

/** Updates the service needs; chat_member must be asked for explicitly or Telegram never sends it. */
export const ALLOWED_UPDATES = ['message', 'callback_query', 'chat_member'] as const;

export const TELEGRAM_WEBHOOK_PATH = '/webhooks/telegram';

export async function replyFailed(error: BotError, log: Logger): Promise<void> {
  log.error({ err: error.error, updateId: error.ctx.update.update_id }, 'telegram update failed');
  if (error.ctx.chat?.type === 'private') await error.ctx.reply(MESSAGES.failed).catch(() => {});
}

/**
 * Starts receiving updates as configured. Webhook: registers our URL with Telegram (an unreachable
 * Telegram must not stop payments from being taken: logged, fixed by restarting). Polling: runs the
 * grammY loop. Returns the stop function.
 */
export async function startUpdates(
  bot: Bot,
  config: Pick<Config, 'TELEGRAM_UPDATES' | 'TELEGRAM_WEBHOOK_SECRET'>,
  publicBaseUrl: () => string,
  log: Logger,
): Promise<() => Promise<void>> {
  if (config.TELEGRAM_UPDATES === 'webhook') {
    await bot.api
      .setWebhook(`${publicBaseUrl()}${TELEGRAM_WEBHOOK_PATH}`, { secret_token: config.TELEGRAM_WEBHOOK_SECRET, allowed_updates: [...ALLOWED_UPDATES] })
      .catch((err: unknown) => log.error({ err }, 'could not register the Telegram webhook; join tracking and the bot are off until it is'));
    return async () => {};
  }
  if (config.TELEGRAM_UPDATES === 'polling') {
    const polling = bot.start({ allowed_updates: [...ALLOWED_UPDATES] }).catch((err: unknown) => log.error({ err }, 'Telegram long polling stopped'));
    return async () => {
      await bot.stop();
      await polling;
    };
  }
  return async () => {};
}
