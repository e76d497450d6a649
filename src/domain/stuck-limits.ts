import { z } from 'zod';
import { formatDuration, parseDuration } from './duration.js';
import { SUMMARY_STATES, type SummaryState } from '../machines/payment.view.js';

// When a payment counts as stuck: each one-word state (payments.state) has a time limit; a payment that
// has been in its state longer than that is listed for an operator (GET /admin/payments?stuck=true, the
// dashboard, the telepay_payments_stuck gauge). STUCK_AFTER is the limit of every state not named in
// STUCK_AFTER_STATES ("received=2h,confirmed=5m,needs_review=0s"; "never" takes a state off the list).
// paid and failed are where payments end: never stuck. Durations use the one parser (src/domain/duration.ts).

/** States a payment ends in: no limit applies, whatever the configuration says. */
export const RESTING_STATES: readonly SummaryState[] = ['paid', 'failed'];

export const DEFAULT_STUCK_AFTER_STATES = 'received=2h,underpaid=1h,confirmed=5m,routed=10m,invited=15m,split=2h,accumulated=30d,needs_review=0s';

/** Milliseconds per state; null = never stuck. */
export type StuckLimits = Record<SummaryState, number | null>;

/** Parses "state=duration,..." (duration or "never"); throws an Error naming the part that is wrong. */
export function parseStuckOverrides(text: string): Partial<Record<SummaryState, number | null>> {
  const out: Partial<Record<SummaryState, number | null>> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const match = /^([a-z_]+)\s*=\s*(\S+)$/.exec(part);
    if (!match) throw new Error(`'${part}' is not state=duration (like needs_review=0s or received=2h)`);
    const [, state, value] = match as unknown as [string, string, string];
    if (!(SUMMARY_STATES as readonly string[]).includes(state)) throw new Error(`'${state}' is not a payment state (one of ${SUMMARY_STATES.join(', ')})`);
    if (RESTING_STATES.includes(state as SummaryState)) throw new Error(`'${state}' is where payments end: it is never stuck`);
    if (state in out) throw new Error(`'${state}' is given twice`);
    out[state as SummaryState] = value === 'never' ? null : parseDuration(value);
  }
  return out;
}

export function stuckLimits(defaultMs: number, overrides: string): StuckLimits {
  const parsed = parseStuckOverrides(overrides);
  const limits = {} as StuckLimits;
  for (const state of SUMMARY_STATES) limits[state] = RESTING_STATES.includes(state) ? null : parsed[state] !== undefined ? parsed[state]! : defaultMs;
  return limits;
}

/** The limits as the operator wrote them: { needs_review: '0s', received: '2h', paid: 'never', ... }. */
export function describeLimits(limits: StuckLimits): Record<string, string> {
  return Object.fromEntries(Object.entries(limits).map(([state, ms]) => [state, ms === null ? 'never' : formatDuration(ms)]));
}

/** STUCK_AFTER_STATES in src/config.ts: kept as text, checked here with the same parser. */
export function stuckOverridesSchema(fallback: string) {
  return z
    .string()
    .default(fallback)
    .superRefine((value, ctx) => {
      try {
        parseStuckOverrides(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: `comma-separated state=duration like received=2h,needs_review=0s: ${(error as Error).message}` });
      }
    });
}
