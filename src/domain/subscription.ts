// The date rules of a subscription (buyer x channel). Pure: the caller passes the clock. Grants run
// in Postgres under the subscription's row lock (src/telegram/subscriptions.repo.ts) and pass the
// database's now(), so concurrent grants and expiry checks agree on one clock; jobs decide with theirs.

export const DAY_MS = 86_400_000;

export interface Period {
  startsAt: Date;
  expiresAt: Date;
}

/**
 * The period one order grants. A renewal extends from the current expiry; once that has passed, from
 * now (a lapse is not charged). A day is 24 hours (UTC, no daylight saving), times are kept to the
 * millisecond so the value a job carries compares equal to the stored one.
 */
export function grantPeriod(input: { currentExpiresAt: Date | null; now: Date; durationDays: number }): Period {
  const { durationDays } = input;
  if (!Number.isSafeInteger(durationDays) || durationDays < 1) throw new Error(`a plan lasts a whole number of days, at least 1 (got ${durationDays})`);
  const now = Math.floor(input.now.getTime());
  const current = input.currentExpiresAt?.getTime() ?? now;
  const startsAt = Math.max(current, now);
  return { startsAt: new Date(startsAt), expiresAt: new Date(startsAt + durationDays * DAY_MS) };
}

/** Whether a subscription expiring at `expiresAt` has ended at `now` (the expiry instant itself counts as ended). */
export function hasEnded(expiresAt: Date, now: Date): boolean {
  return expiresAt.getTime() <= now.getTime();
}

/**
 * When the reminders for a period ending at `expiresAt` go out: each offset before the expiry, if that
 * moment is still ahead (a period shorter than a reminder's lead gets no such reminder).
 */
export function reminderTimes(expiresAt: Date, remindersMs: readonly number[], now: Date): { beforeMs: number; at: Date }[] {
  return remindersMs
    .map((beforeMs) => ({ beforeMs, at: new Date(expiresAt.getTime() - beforeMs) }))
    .filter(({ at }) => at.getTime() > now.getTime());
}
