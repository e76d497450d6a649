import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { durationSchema, formatDuration, MAX_DURATION_MS, parseDuration, parseDurationList } from './duration.js';

describe('parseDuration', () => {
  it('reads every unit', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('15m')).toBe(900_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('3d')).toBe(259_200_000);
    expect(parseDuration(' 0s ')).toBe(0);
    expect(parseDuration('3650d')).toBe(MAX_DURATION_MS);
  });

  it('refuses garbage, saying what was expected and what it got', () => {
    for (const bad of ['', '15', '15 minutes', '1.5h', '-1s', '+1s', '1 s', '1S', '1w', 'ms', '1e3ms', '0x10s', 'soon', '1d1h']) {
      expect(() => parseDuration(bad), bad).toThrow(`expected a duration like 30s, 15m, 3d (got '${bad}')`);
    }
  });

  it('refuses anything above ten years', () => {
    expect(() => parseDuration('3651d')).toThrow("'3651d' is longer than 10 years (3650d); refused as a likely mistake");
    expect(() => parseDuration('99999999999999999ms')).toThrow(/expected a duration/);
    expect(() => parseDuration('9999999999999999d')).toThrow(/longer than 10 years/);
  });
});

describe('parseDurationList', () => {
  it('reads comma-separated durations; empty is none', () => {
    expect(parseDurationList('3d,1d, 12h')).toEqual([259_200_000, 86_400_000, 43_200_000]);
    expect(parseDurationList('')).toEqual([]);
    expect(() => parseDurationList('3d,tomorrow')).toThrow("(got 'tomorrow')");
  });
});

describe('formatDuration', () => {
  it('uses the largest exact unit', () => {
    expect(formatDuration(86_400_000)).toBe('1d');
    expect(formatDuration(90_000)).toBe('90s');
    expect(formatDuration(1_500)).toBe('1500ms');
    expect(formatDuration(7_200_000)).toBe('2h');
    expect(formatDuration(0)).toBe('0s');
    expect(() => formatDuration(-1)).toThrow();
    expect(() => formatDuration(1.5)).toThrow();
  });

  it('round-trips through parseDuration', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: MAX_DURATION_MS }), (ms) => parseDuration(formatDuration(ms)) === ms));
  });
});

describe('durationSchema', () => {
  it('parses, defaults and reports a bad value as an issue', () => {
    expect(durationSchema('15m').parse(undefined)).toBe(900_000);
    expect(durationSchema().optional().parse(undefined)).toBeUndefined();
    expect(durationSchema().parse('1h')).toBe(3_600_000);
    const bad = durationSchema().safeParse('soon');
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toBe("expected a duration like 30s, 15m, 3d (got 'soon')");
  });
});
