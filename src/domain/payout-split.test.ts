import { Decimal } from 'decimal.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { feeBasisPoints, splitOutcome } from './payout-split.js';
import { fromBaseUnits, toBaseUnits } from './units.js';

// An independent decimal.js with room for 78-digit amounts, to check the bigint arithmetic against.
const Big = Decimal.clone({ precision: 200, rounding: Decimal.ROUND_DOWN });

const WEI = 18;
const units = fc.bigInt({ min: 0n, max: 10n ** 30n });
const decimals = fc.integer({ min: 0, max: 24 });
const feeBp = fc.bigInt({ min: 0n, max: 9_999n });
const feePercent = feeBp.map((bp) => fromBaseUnits(bp, 2));
// USD amounts as NowPayments sends them: a few decimals, sometimes none.
const usd = fc.tuple(fc.bigInt({ min: 0n, max: 10n ** 12n }), fc.integer({ min: 0, max: 8 })).map(([u, d]) => fromBaseUnits(u, d));
const positiveUsd = fc.tuple(fc.bigInt({ min: 1n, max: 10n ** 12n }), fc.integer({ min: 0, max: 8 })).map(([u, d]) => fromBaseUnits(u, d));

describe('units', () => {
  it('converts exactly in both directions', () => {
    expect(toBaseUnits('1.5', 18)).toBe(1_500_000_000_000_000_000n);
    expect(toBaseUnits('0.000000000000000001', 18)).toBe(1n);
    expect(toBaseUnits('123456789.123456789123456789', 18)).toBe(123_456_789_123_456_789_123_456_789n);
    expect(toBaseUnits('7', 0)).toBe(7n);
    expect(toBaseUnits('1.50', 1)).toBe(15n);
    expect(fromBaseUnits(1_500_000_000_000_000_000n, 18)).toBe('1.5');
    expect(fromBaseUnits(1n, 18)).toBe('0.000000000000000001');
    expect(fromBaseUnits(0n, 18)).toBe('0');
    expect(fromBaseUnits(10n ** 18n, 18)).toBe('1');
    expect(fromBaseUnits(-25n, 1)).toBe('-2.5');
    expect(fromBaseUnits(42n, 0)).toBe('42');
  });

  it('refuses more fractional digits than the unit, negatives and garbage', () => {
    expect(() => toBaseUnits('0.0000000000000000001', 18)).toThrow(/more than the unit/);
    expect(() => toBaseUnits('1.05', 1)).toThrow(/more than the unit/);
    for (const bad of ['-1', '1e18', '', ' 1', '1.', '.5', '0x10', 'NaN', 'Infinity', '1,5', '+1']) {
      expect(() => toBaseUnits(bad, 18), bad).toThrow();
    }
    expect(() => toBaseUnits('1', -1)).toThrow(/decimals/);
    expect(() => toBaseUnits('1', 1.5)).toThrow(/decimals/);
  });

  it('round-trips every amount (property)', () => {
    fc.assert(
      fc.property(units, decimals, (u, d) => {
        const text = fromBaseUnits(u, d);
        expect(text).not.toMatch(/\.\d*0$/);
        expect(toBaseUnits(text, d)).toBe(u);
        expect(new Big(text).times(new Big(10).pow(d)).toFixed()).toBe(u.toString());
      }),
    );
  });
});

describe('splitOutcome', () => {
  it('splits 10% of 1 ETH exactly', () => {
    expect(splitOutcome({ outcomeAmount: '1', outcomeDecimals: WEI, feePercent: '10', priceAmount: '9.99' })).toEqual({
      outcomeUnits: 10n ** 18n,
      ownerUnits: 900_000_000_000_000_000n,
      feeUnits: 100_000_000_000_000_000n,
      feeBasisPoints: 1000n,
      usdValue: '9.99',
      ownerUsd: '8.991',
      feeUsd: '0.999',
    });
  });

  it('rounds the owner share down to the wei and gives the remainder to the platform', () => {
    // 1 wei at 0.01%: the owner's 0.9999 wei rounds down to 0, the platform keeps the wei.
    const tiny = splitOutcome({ outcomeAmount: '0.000000000000000001', outcomeDecimals: WEI, feePercent: '0.01', priceAmount: '1' });
    expect([tiny.ownerUnits, tiny.feeUnits]).toEqual([0n, 1n]);
    // 3 wei at 33.33%: 3 × 6667 / 10000 = 2.0001 → 2 to the owner, 1 to the platform.
    const three = splitOutcome({ outcomeAmount: '0.000000000000000003', outcomeDecimals: WEI, feePercent: '33.33', priceAmount: '1' });
    expect([three.ownerUnits, three.feeUnits]).toEqual([2n, 1n]);
  });

  it('values an accepted underpayment at what arrived: 5 of 9.99 paid is worth ~5 USD, not 9.99', () => {
    const s = splitOutcome({
      outcomeAmount: '0.0016', outcomeDecimals: WEI, feePercent: '10', priceAmount: '9.99', payAmount: '9.99', actuallyPaid: '5',
    });
    expect(s.usdValue).toBe('5');
    expect(s.ownerUsd).toBe('4.5');
    expect(s.feeUsd).toBe('0.5');
    // Paid in another currency: 0.0015 of 0.0031 ETH for a 9.99 USD invoice → 9.99 × 15/31, rounded down.
    const eth = splitOutcome({
      outcomeAmount: '0.0015', outcomeDecimals: WEI, feePercent: '10', priceAmount: '9.99', payAmount: '0.0031', actuallyPaid: '0.0015',
    });
    expect(eth.usdValue).toBe('4.83387096');
    expect(eth.ownerUsd).toBe('4.35048386');
    expect(eth.feeUsd).toBe('0.4833871');
  });

  it('values a full or over-payment, or one without payment facts, at the price', () => {
    const base = { outcomeAmount: '0.003', outcomeDecimals: WEI, feePercent: '5', priceAmount: '9.99' };
    expect(splitOutcome({ ...base, payAmount: '0.0031', actuallyPaid: '0.0031' }).usdValue).toBe('9.99');
    expect(splitOutcome({ ...base, payAmount: '0.0031', actuallyPaid: '0.004' }).usdValue).toBe('9.99');
    expect(splitOutcome({ ...base, payAmount: null, actuallyPaid: '0.001' }).usdValue).toBe('9.99');
    expect(splitOutcome({ ...base, payAmount: '0.0031', actuallyPaid: null }).usdValue).toBe('9.99');
    expect(splitOutcome({ ...base, payAmount: '0', actuallyPaid: '0.001' }).usdValue).toBe('9.99');
    expect(splitOutcome({ ...base, payAmount: '0.0031', actuallyPaid: '0' }).usdValue).toBe('0');
    // Exact, not via a rounded ratio: 187767835150 × 1/7 is 26823976450, not 26823976449.99999999.
    expect(splitOutcome({ ...base, priceAmount: '187767835150', payAmount: '7', actuallyPaid: '1' }).usdValue).toBe('26823976450');
  });

  it('handles 0% and 99.99% fees', () => {
    const zero = splitOutcome({ outcomeAmount: '0.123456789012345678', outcomeDecimals: WEI, feePercent: '0', priceAmount: '9.99' });
    expect(zero).toMatchObject({ ownerUnits: 123_456_789_012_345_678n, feeUnits: 0n, ownerUsd: '9.99', feeUsd: '0' });
    const most = splitOutcome({ outcomeAmount: '1', outcomeDecimals: WEI, feePercent: '99.99', priceAmount: '9.99' });
    expect(most).toMatchObject({ ownerUnits: 100_000_000_000_000n, feeUnits: 999_900_000_000_000_000n, ownerUsd: '0.000999', feeUsd: '9.989001' });
  });

  it('takes the fee as exact basis points and refuses anything else', () => {
    expect(feeBasisPoints('2.5')).toBe(250n);
    expect(feeBasisPoints('0.01')).toBe(1n);
    expect(feeBasisPoints('99.99')).toBe(9999n);
    for (const bad of ['100', '150', '-1', '2.555', '1e1', 'ten']) expect(() => feeBasisPoints(bad), bad).toThrow(/fee percent/);
  });

  it('refuses an outcome finer than its unit and garbage amounts', () => {
    const base = { outcomeDecimals: WEI, feePercent: '10', priceAmount: '9.99' };
    expect(() => splitOutcome({ ...base, outcomeAmount: '0.0000000000000000001' })).toThrow(/more than the unit/);
    expect(() => splitOutcome({ ...base, outcomeAmount: '-1' })).toThrow();
    expect(() => splitOutcome({ ...base, outcomeAmount: '1', priceAmount: 'lots' })).toThrow(/priceAmount/);
    expect(() => splitOutcome({ ...base, outcomeAmount: '1', payAmount: '1', actuallyPaid: '-0.5' })).toThrow(/actuallyPaid/);
  });

  describe('properties', () => {
    const outcome = fc.tuple(units, decimals).map(([u, d]) => ({ outcomeAmount: fromBaseUnits(u, d), outcomeDecimals: d, u }));

    it('owner + fee == outcome exactly, never negative, owner ≤ outcome × (1 − fee) and is the largest such wei', () => {
      fc.assert(
        fc.property(outcome, feeBp, usd, ({ outcomeAmount, outcomeDecimals, u }, bp, price) => {
          const s = splitOutcome({ outcomeAmount, outcomeDecimals, feePercent: fromBaseUnits(bp, 2), priceAmount: price });
          expect(s.outcomeUnits).toBe(u);
          expect(s.ownerUnits + s.feeUnits).toBe(s.outcomeUnits);
          expect(s.ownerUnits >= 0n && s.feeUnits >= 0n).toBe(true);
          expect(s.ownerUnits * 10_000n <= u * (10_000n - bp)).toBe(true);
          expect((s.ownerUnits + 1n) * 10_000n > u * (10_000n - bp)).toBe(true);
        }),
        { numRuns: 500 },
      );
    });

    it('holds for 18-decimal outcomes in particular', () => {
      fc.assert(
        fc.property(fc.bigInt({ min: 0n, max: 10n ** 24n }), feePercent, (wei, fee) => {
          const s = splitOutcome({ outcomeAmount: fromBaseUnits(wei, WEI), outcomeDecimals: WEI, feePercent: fee, priceAmount: '9.99' });
          expect(s.outcomeUnits).toBe(wei);
          expect(s.ownerUnits + s.feeUnits).toBe(wei);
          expect(s.ownerUnits).toBeLessThanOrEqual(wei);
          expect(s.feeUnits).toBeGreaterThanOrEqual(0n);
        }),
        { numRuns: 300 },
      );
    });

    it('USD: the value actually received rounded down, split so owner + fee == value, never above the price', () => {
      fc.assert(
        fc.property(feeBp, usd, fc.option(positiveUsd), fc.option(usd), (bp, price, pay, paid) => {
          const s = splitOutcome({ outcomeAmount: '1', outcomeDecimals: WEI, feePercent: fromBaseUnits(bp, 2), priceAmount: price, payAmount: pay, actuallyPaid: paid });
          // Multiply before dividing, so a quotient such as 1/7 is not cut short before the price scales it.
          const full = pay === null || paid === null || new Big(paid).gte(pay);
          const expected = (full ? new Big(price) : new Big(price).times(paid).div(pay)).toDecimalPlaces(8, Decimal.ROUND_DOWN);
          expect(s.usdValue).toBe(expected.toFixed());
          expect(new Big(s.usdValue).lte(price)).toBe(true);
          expect(new Big(s.ownerUsd).plus(s.feeUsd).toFixed()).toBe(s.usdValue);
          expect(new Big(s.ownerUsd).gte(0) && new Big(s.feeUsd).gte(0)).toBe(true);
          const ownerExpected = expected.times(10_000 - Number(bp)).div(10_000).toDecimalPlaces(8, Decimal.ROUND_DOWN);
          expect(s.ownerUsd).toBe(ownerExpected.toFixed());
        }),
        { numRuns: 500 },
      );
    });
  });
});
