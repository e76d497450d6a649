import { z } from 'zod';

// Durations are written with their unit ("250ms", "30s", "15m", "2h", "3d") and mean milliseconds.
// One parser for configuration, SUBSCRIPTION_REMINDERS and the operator API's stuck_for, so the same
// text means the same thing everywhere. No unit, a fraction, a sign or anything longer than ten years
// (a typo like "30000d", or a number that has stopped being exact) is refused with what was expected.

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof UNIT_MS;

const DURATION = /^(\d{1,16})(ms|s|m|h|d)$/;

/** The longest duration accepted: 3650 days. */
export const MAX_DURATION_MS = 3_650 * UNIT_MS.d;

export const DURATION_EXAMPLE = 'expected a duration like 30s, 15m, 3d';

/** "30s" → 30000. Throws an Error whose message says what was expected and what was given. */
export function parseDuration(text: string): number {
  const value = text.trim();
  const match = DURATION.exec(value);
  if (!match) throw new Error(`${DURATION_EXAMPLE} (got '${text}')`);
  const ms = Number(match[1]) * UNIT_MS[match[2] as Unit];
  if (ms > MAX_DURATION_MS) throw new Error(`'${text}' is longer than 10 years (${formatDuration(MAX_DURATION_MS)}); refused as a likely mistake`);
  return ms;
}

/** Comma-separated durations ("3d,1d,12h"); empty parts are skipped, so "" is none. */
export function parseDurationList(text: string): number[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map(parseDuration);
}

/** 86400000 → "1d", 90000 → "90s", 1500 → "1500ms": the largest unit that states it exactly, so parseDuration(formatDuration(ms)) === ms. */
export function formatDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new Error(`not a duration in milliseconds: ${ms}`);
  if (ms === 0) return '0s';
  const units: Unit[] = ['d', 'h', 'm', 's', 'ms'];
  const unit = units.find((u) => ms % UNIT_MS[u] === 0)!;
  return `${ms / UNIT_MS[unit]}${unit}`;
}

/**
 * A zod string → milliseconds (configuration, query strings). With a fallback, an absent value is the
 * fallback (parsed like any other). A bad value is a validation issue carrying parseDuration's message.
 */
export function durationSchema(fallback?: string) {
  const text = fallback === undefined ? z.string() : z.string().default(fallback);
  return text.transform((value, ctx) => {
    try {
      return parseDuration(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
      return z.NEVER;
    }
  });
}
