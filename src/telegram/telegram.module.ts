import type { Bot, BotError } from 'grammy';
import type { Logger } from 'pino';
import { createInviteActor } from '../actors/telegram/invite.actor.js';
import { TELEGRAM_WEBHOOK_PATH, telegramWebhookRoutes } from '../http/routes/telegram-webhook.route.js';
import type { Module, ModuleDeps } from '../modules.js';
import { StartupError } from '../runtime.js';
import { startFakeTelegram, type FakeTelegram } from '../sandbox/telegram.fake.js';
import { buyingBot, MESSAGES } from './bot.js';
import { createTelegramBot } from './client.js';
import { joinTracking } from './join-tracking.js';
import { parseReminders, startSubscriptionWorkers, subscriptionQueues } from './subscriptions.service.js';

// Telegram: the invite actor (one link per paid order), subscriptions (grants, reminders, removal at
// expiry), join tracking and the buying bot. Without TELEGRAM_BOT_TOKEN outside production, a fake Bot
// API runs in-process (the sandbox) and the invites it "sent" are logged.

/** Updates the service needs; chat_member must be asked for explicitly or Telegram never sends it. */
export const ALLOWED_UPDATES = ['message', 'callback_query', 'chat_member'] as const;

export interface TelegramRuntime {
  bot: Bot;
  remindersMs: number[];
  /** The in-process fake Bot API in the sandbox. */
  fake: FakeTelegram | null;
}

const SANDBOX_TOKEN = '1000001:sandbox-token';

export function telegramRuntime(deps: ModuleDeps): TelegramRuntime {
  const runtime = deps.shared.telegram as TelegramRuntime | undefined;
  if (!runtime) throw new Error('telegram module: prepare did not run');
  return runtime;
}

async function replyFailed(error: BotError, log: Logger): Promise<void> {
  log.error({ err: error.error, updateId: error.ctx.update.update_id }, 'telegram update failed');
  if (error.ctx.chat?.type === 'private') await error.ctx.reply(MESSAGES.failed).catch(() => {});
}

/** Sandbox only: what the bot "sent", so a developer sees the invite. The links are the fake's own and grant nothing, so logging them is fine here (never with a real token). */
function logSandboxSends(fake: FakeTelegram, log: Logger): () => void {
  return fake.onCall((call) => {
    if (call.method !== 'sendMessage' || !call.acted) return;
    const markup = typeof call.body.reply_markup === 'string' ? (JSON.parse(call.body.reply_markup) as unknown) : call.body.reply_markup;
    const button = (markup as { inline_keyboard?: { url?: string }[][] } | undefined)?.inline_keyboard?.flat().find((b) => b.url?.startsWith('https://t.me/+'));
    log.info({ chatId: call.body.chat_id, text: call.body.text, sandboxLink: button?.url }, 'sandbox Telegram: message sent');
  });
}

export const telegramModule: Module = {
  name: 'telegram',
  queues: subscriptionQueues,

  async prepare(deps) {
    const { config, log } = deps;
    let remindersMs: number[];
    try {
      remindersMs = parseReminders(config.SUBSCRIPTION_REMINDERS);
    } catch (error) {
      throw new StartupError((error as Error).message);
    }
    if (config.TELEGRAM_UPDATES === 'webhook' && !config.TELEGRAM_WEBHOOK_SECRET) {
      throw new StartupError('TELEGRAM_WEBHOOK_SECRET is required with TELEGRAM_UPDATES=webhook: without it anyone could post fake updates.');
    }
    let fake: FakeTelegram | null = null;
    let stopLogging = () => {};
    if (!config.TELEGRAM_BOT_TOKEN) {
      if (config.NODE_ENV === 'production') throw new StartupError('TELEGRAM_BOT_TOKEN is required in production: no invite can be sent without it.');
      fake = await startFakeTelegram({ token: SANDBOX_TOKEN });
      stopLogging = logSandboxSends(fake, log);
      log.warn('TELEGRAM_BOT_TOKEN not set: using an in-process fake Telegram Bot API (sandbox); invites are logged, not sent');
    }
    const bot = createTelegramBot({
      token: config.TELEGRAM_BOT_TOKEN ?? SANDBOX_TOKEN,
      apiRoot: fake?.apiRoot ?? config.TELEGRAM_API_ROOT,
      timeoutMs: config.TELEGRAM_REQUEST_TIMEOUT,
      ...(fake && { botInfo: fake.botInfo }),
    });
    bot.use(joinTracking({ pool: deps.pool, log }));
    bot.use(buyingBot({ pool: deps.pool, log, orderService: () => deps.shared.orderService }));
    bot.catch((error) => replyFailed(error, log));
    const runtime: TelegramRuntime = { bot, remindersMs, fake };
    deps.shared.telegram = runtime;
    return async () => {
      stopLogging();
      await fake?.close();
    };
  },

  actors(deps) {
    const { bot, remindersMs } = telegramRuntime(deps);
    return [
      createInviteActor({
        pool: deps.pool,
        boss: deps.boss,
        api: bot.api,
        log: deps.log,
        inviteExpireAfterMs: deps.config.INVITE_EXPIRE_AFTER,
        leaseMs: deps.config.JOB_EXPIRE_AFTER,
        remindersMs,
      }),
    ];
  },

  async routes(app, deps) {
    const secret = deps.config.TELEGRAM_WEBHOOK_SECRET;
    if (deps.config.TELEGRAM_UPDATES !== 'webhook' || !secret) return;
    const { bot } = telegramRuntime(deps);
    await telegramWebhookRoutes(app, { bot, secret, onBuyerError: (error) => replyFailed(error, deps.log) });
  },

  async start(deps) {
    const { config, log } = deps;
    const { bot, remindersMs } = telegramRuntime(deps);
    const stopWorkers = await startSubscriptionWorkers({
      pool: deps.pool,
      boss: deps.boss,
      api: bot.api,
      log,
      remindersMs,
      dryRun: config.SUBSCRIPTION_REMOVAL_DRY_RUN,
    });
    let polling: Promise<void> | null = null;
    if (config.TELEGRAM_UPDATES === 'webhook') {
      const url = `${deps.runtime.publicBaseUrl()}${TELEGRAM_WEBHOOK_PATH}`;
      // Telegram being unreachable must not stop payments from being taken: log, and fix by restarting.
      await bot.api
        .setWebhook(url, { secret_token: config.TELEGRAM_WEBHOOK_SECRET, allowed_updates: [...ALLOWED_UPDATES] })
        .catch((err: unknown) => log.error({ err }, 'could not register the Telegram webhook; join tracking and the bot are off until it is'));
    } else if (config.TELEGRAM_UPDATES === 'polling') {
      polling = bot.start({ allowed_updates: [...ALLOWED_UPDATES] }).catch((err: unknown) => log.error({ err }, 'Telegram long polling stopped'));
    }
    return async () => {
      if (polling) {
        await bot.stop();
        await polling;
      }
      await stopWorkers();
    };
  },
};
