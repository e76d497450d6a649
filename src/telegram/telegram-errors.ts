import { GrammyError, HttpError } from 'grammy';

// What a failed Bot API call means for whoever retries it. The distinction that matters most is
// whether Telegram may have acted: an answer (any error_code) means it did not; a network error after
// the request left may mean it did, and repeating the call blindly is how duplicates are made.

export type TelegramFailure =
  /** Telegram answered 429 and auto-retry's bounded waits ran out. Not acted. */
  | { kind: 'rate-limited'; description: string }
  /** Telegram answered 5xx. Not acted. */
  | { kind: 'server'; description: string }
  /** 403: the user blocked the bot or never started it; or the bot is not in the chat. */
  | { kind: 'forbidden'; description: string }
  /** Another 4xx: a request Telegram refuses as it stands (chat not found, not an admin, ...). */
  | { kind: 'rejected'; code: number; description: string }
  /** The request never reached Telegram (refused connection, DNS). Not acted. */
  | { kind: 'unsent'; description: string }
  /** No answer after the request was sent (timeout, reset): Telegram may have acted. */
  | { kind: 'unknown'; description: string };

const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

export function classifyTelegramError(error: unknown): TelegramFailure | null {
  if (error instanceof GrammyError) {
    const description = `Telegram ${error.error_code}: ${error.description}`;
    if (error.error_code === 429) return { kind: 'rate-limited', description };
    if (error.error_code >= 500) return { kind: 'server', description };
    if (error.error_code === 403) return { kind: 'forbidden', description };
    return { kind: 'rejected', code: error.error_code, description };
  }
  if (error instanceof HttpError) {
    const code = (error.error as { code?: unknown } | undefined)?.code;
    const description = `${error.message}${typeof code === 'string' ? ` (${code})` : ''}`;
    return typeof code === 'string' && NEVER_SENT.has(code) ? { kind: 'unsent', description } : { kind: 'unknown', description };
  }
  return null;
}

/** A 400 meaning the link is gone already (expired, revoked, unknown): revoking it again is pointless. */
export function isLinkGone(error: unknown): boolean {
  return error instanceof GrammyError && error.error_code === 400 && /INVITE_HASH|invite link/i.test(error.description);
}

/**
 * Where a caller that waits out 429s itself keeps retry_after, so grammY's auto-retry (which waits on
 * `parameters.retry_after`) passes the 429 through at once (the invite actor: src/actors/telegram).
 */
export const RETRY_AFTER_HELD = 'telepay_retry_after';

/** The wait Telegram asked for with a 429 (parameters.retry_after, seconds); null for any other error. */
export function retryAfterOf(error: unknown): number | null {
  if (!(error instanceof GrammyError) || error.error_code !== 429) return null;
  const parameters = error.parameters as { retry_after?: unknown; [RETRY_AFTER_HELD]?: unknown };
  const after = parameters.retry_after ?? parameters[RETRY_AFTER_HELD];
  return typeof after === 'number' && Number.isFinite(after) && after >= 0 ? after : 1;
}
