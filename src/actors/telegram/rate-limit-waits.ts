import { Api, type Transformer } from 'grammy';
import { RETRY_AFTER_HELD } from '../../telegram/telegram-errors.js';

// What the invite actor needs to wait out Telegram's 429s itself, after recording the refusal (see
// invite.actor.ts): an abortable pause, and the bot's API without grammY's own 429 waits.

/** Resolves after ms, or rejects when the job is aborted (shutdown, or pg-boss saw its claim go). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('invite job aborted while waiting out a 429', { cause: signal.reason }));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Error('invite job aborted while waiting out a 429', { cause: signal.reason }));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The Bot API as the invite actor uses it: the bot's own client (token, options and every transformer
 * installed on it: token scrubbing, error metrics, auto-retry) with one more, innermost, that moves a
 * 429's retry_after where grammY's auto-retry does not look (RETRY_AFTER_HELD), so auto-retry returns
 * the 429 at once instead of waiting between our "send attempted" mark and our record of the refusal.
 * The wait is this actor's (withRateLimit), after the refusal is recorded; retryAfterOf reads it.
 */
export function withoutRateLimitWaits(api: Api): Api {
  const direct = new Api(api.token, api.options);
  const holdRetryAfter: Transformer = async (prev, method, payload, signal) => {
    const response = await prev(method, payload, signal);
    const retryAfter = response.ok ? undefined : response.parameters?.retry_after;
    if (response.ok || response.error_code !== 429 || typeof retryAfter !== 'number') return response;
    const { retry_after: _held, ...parameters } = response.parameters ?? {};
    return { ...response, parameters: { ...parameters, [RETRY_AFTER_HELD]: retryAfter } as typeof parameters };
  };
  direct.config.use(holdRetryAfter, ...api.config.installedTransformers());
  return direct;
}
