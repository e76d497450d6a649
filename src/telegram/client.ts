import { autoRetry } from '@grammyjs/auto-retry';
import { Bot } from 'grammy';
import type { UserFromGetMe } from 'grammy/types';
import type { Config } from '../config.js';

export interface TelegramClientOptions {
  token: string;
  apiRoot: string;
  timeoutMs: Config['TELEGRAM_REQUEST_TIMEOUT'];
  /** Known bot identity (the sandbox fake's); skips getMe. */
  botInfo?: UserFromGetMe;
}

// Flood control is bounded (FACTS.md): auto-retry's defaults retry forever, and retry network errors,
// which after a timeout where Telegram acted is exactly how a second link or message is produced.
// Here it only waits out 429s (at most 3 times, at most 30 s each); 5xx and network errors are
// rethrown so the job fails and pg-boss retries it with backoff, after our own records were consulted.
export const AUTO_RETRY = {
  maxRetryAttempts: 3,
  maxDelaySeconds: 30,
  rethrowHttpErrors: true,
  rethrowInternalServerErrors: true,
} as const;

export function createTelegramBot(options: TelegramClientOptions): Bot {
  const bot = new Bot(options.token, {
    client: { apiRoot: options.apiRoot, timeoutSeconds: Math.max(1, Math.ceil(options.timeoutMs / 1000)) },
    ...(options.botInfo !== undefined && { botInfo: options.botInfo }),
  });
  bot.api.config.use(autoRetry(AUTO_RETRY));
  return bot;
}
