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

// Flood control is bounded: @grammyjs/auto-retry's defaults (maxRetryAttempts and maxDelaySeconds
// Infinity, rethrowHttpErrors false) retry forever and retry network errors, and a network error after
// a timeout where Telegram acted is exactly how a second link or message is produced.
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
  // Outermost transformer: whatever a call throws leaves without the token (see withoutToken).
  bot.api.config.use(async (prev, method, payload, signal) => {
    try {
      return await prev(method, payload, signal);
    } catch (error) {
      throw withoutToken(error, options.token);
    }
  });
  return bot;
}

// grammY's HttpError (a network failure) says "Network request for 'x' failed!", but the error nested in
// it (node-fetch's FetchError, or an AbortError) quotes the request URL: https://api.telegram.org/bot<token>/x.
// Whoever logs or stores the error (job failure reasons, review reasons, logs) would keep the token. The
// error keeps its class (classifyTelegramError relies on it); only message and stack texts are edited,
// down the nested `error` and `cause` chain. The logger scrubs the token as well (src/logger.ts).
export function withoutToken<E>(error: E, token: string): E {
  if (token.length === 0) return error;
  const scrub = (text: string) => text.split(token).join('[Redacted]');
  const seen = new Set<unknown>();
  const pending: unknown[] = [error];
  while (pending.length > 0 && seen.size < 20) {
    const e = pending.pop();
    if (!e || typeof e !== 'object' || seen.has(e)) continue;
    seen.add(e);
    const target = e as { message?: unknown; stack?: unknown; error?: unknown; cause?: unknown };
    for (const key of ['message', 'stack'] as const) {
      const value = target[key];
      if (typeof value === 'string' && value.includes(token)) {
        try {
          Object.defineProperty(target, key, { value: scrub(value), writable: true, configurable: true, enumerable: Object.prototype.propertyIsEnumerable.call(target, key) });
        } catch {
          // a frozen error: the logger still scrubs it
        }
      }
    }
    pending.push(target.error, target.cause);
  }
  return error;
}
