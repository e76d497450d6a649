import { describe, expect, it } from 'vitest';
import { DAY_MS, grantPeriod, hasEnded, reminderTimes } from './subscription.js';

const at = (iso: string) => new Date(iso);

describe('grantPeriod', () => {
  it('a first grant starts now', () => {
    const now = at('2030-01-01T10:00:00.123Z');
    expect(grantPeriod({ currentExpiresAt: null, now, durationDays: 30 })).toEqual({ startsAt: now, expiresAt: at('2030-01-31T10:00:00.123Z') });
  });

  it('a renewal extends from the current expiry, not from now', () => {
    const expiry = at('2030-01-20T00:00:00.000Z');
    expect(grantPeriod({ currentExpiresAt: expiry, now: at('2030-01-01T00:00:00Z'), durationDays: 30 })).toEqual({
      startsAt: expiry,
      expiresAt: new Date(expiry.getTime() + 30 * DAY_MS),
    });
  });

  it('once lapsed, a renewal starts from now: the lapse is not charged', () => {
    const now = at('2030-03-01T12:00:00.000Z');
    const period = grantPeriod({ currentExpiresAt: at('2030-02-01T00:00:00Z'), now, durationDays: 7 });
    expect(period).toEqual({ startsAt: now, expiresAt: at('2030-03-08T12:00:00.000Z') });
  });

  it('an expiry exactly now extends from now; days are 24 h across daylight saving changes', () => {
    const now = at('2030-03-30T00:00:00.000Z');
    expect(grantPeriod({ currentExpiresAt: now, now, durationDays: 1 }).expiresAt).toEqual(at('2030-03-31T00:00:00.000Z'));
    expect(grantPeriod({ currentExpiresAt: null, now, durationDays: 2 }).expiresAt.getTime() - now.getTime()).toBe(2 * DAY_MS);
  });

  it('refuses a duration that is not a whole positive number of days', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => grantPeriod({ currentExpiresAt: null, now: new Date(), durationDays: bad })).toThrow(/whole number of days/);
    }
  });
});

describe('hasEnded', () => {
  it('ends at the expiry instant', () => {
    const expiry = at('2030-01-01T00:00:00.000Z');
    expect(hasEnded(expiry, at('2029-12-31T23:59:59.999Z'))).toBe(false);
    expect(hasEnded(expiry, expiry)).toBe(true);
  });
});

describe('reminderTimes', () => {
  it('one per offset before expiry, only those still ahead', () => {
    const expiry = at('2030-01-10T00:00:00Z');
    expect(reminderTimes(expiry, [3 * DAY_MS, DAY_MS], at('2030-01-08T00:00:00Z'))).toEqual([{ beforeMs: DAY_MS, at: at('2030-01-09T00:00:00Z') }]);
    expect(reminderTimes(expiry, [3 * DAY_MS, DAY_MS], at('2030-01-01T00:00:00Z'))).toHaveLength(2);
    expect(reminderTimes(expiry, [], at('2030-01-01T00:00:00Z'))).toEqual([]);
  });
});
