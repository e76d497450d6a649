import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { BotError, type Bot } from 'grammy';
import type { Update } from 'grammy/types';
import { z } from 'zod';
import { TELEGRAM_WEBHOOK_PATH } from '../../telegram/updates.js';
import { HttpError } from '../plugins/error-handler.js';

// POST /webhooks/telegram: updates from Telegram (chat_member for join tracking, messages and button
// taps for the buying bot). Telegram proves it is Telegram with the secret_token we gave setWebhook,
// echoed in a header; compared in constant time.
//
// Answering non-2xx makes Telegram redeliver the update. That is what join tracking wants when a step
// failed (every step is safe to repeat); a buyer's message or tap is not redelivered (a repeat could
// create a second order): the bot has already told the buyer something went wrong.

export interface TelegramWebhookDeps {
  bot: Bot;
  secret: string;
  /** Called for a failed update the buyer was already told about; the webhook then answers 200. */
  onBuyerError(error: BotError): Promise<void>;
}

const updateSchema = z.looseObject({ update_id: z.number().int() });

function secretMatches(given: unknown, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function telegramWebhookRoutes(app: FastifyInstance, deps: TelegramWebhookDeps): Promise<void> {
  app.post(TELEGRAM_WEBHOOK_PATH, { schema: { hide: true } }, async (request, reply) => {
    if (!secretMatches(request.headers['x-telegram-bot-api-secret-token'], deps.secret)) {
      throw new HttpError(401, 'missing or wrong X-Telegram-Bot-Api-Secret-Token');
    }
    const parsed = updateSchema.safeParse(request.body);
    if (!parsed.success) throw new HttpError(400, 'body is not a Telegram update (update_id missing)');
    const update = parsed.data as unknown as Update;
    if (!deps.bot.isInited()) await deps.bot.init();
    try {
      await deps.bot.handleUpdate(update);
    } catch (error) {
      if (error instanceof BotError && update.chat_member === undefined) {
        await deps.onBuyerError(error);
        return reply.status(200).send({ ok: true });
      }
      throw error;
    }
    return reply.status(200).send({ ok: true });
  });
}
