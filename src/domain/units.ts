// Conversions between decimal strings and integer base units (wei for ETH: 18 decimals). Exact by
// construction: digits are moved, never multiplied through a float, and nothing is ever rounded — an
// amount that does not fit the unit is refused, because a silently dropped digit is money lost.

const UNSIGNED_DECIMAL = /^(\d+)(?:\.(\d+))?$/;

function checkDecimals(decimals: number): void {
  if (!Number.isSafeInteger(decimals) || decimals < 0) throw new Error(`decimals must be a non-negative integer, got ${decimals}`);
}

/**
 * "1.5" with 18 decimals → 1500000000000000000n. Throws on negatives, on anything but plain digits with
 * an optional fraction (no exponent, sign or spaces), and on more significant fractional digits than
 * `decimals`. Trailing zeros beyond `decimals` are accepted ("1.50" at 1 decimal is exactly 15).
 */
export function toBaseUnits(decimal: string, decimals: number): bigint {
  checkDecimals(decimals);
  if (typeof decimal !== 'string') throw new Error(`not a decimal string: ${String(decimal)}`);
  const match = UNSIGNED_DECIMAL.exec(decimal);
  if (!match) throw new Error(`not a non-negative decimal amount: "${decimal}"`);
  const whole = match[1]!;
  const fraction = (match[2] ?? '').replace(/0+$/, '');
  if (fraction.length > decimals) {
    throw new Error(`"${decimal}" has ${fraction.length} fractional digits, more than the unit's ${decimals}`);
  }
  return BigInt(whole + fraction.padEnd(decimals, '0'));
}

/** 1500000000000000000n with 18 decimals → "1.5": plain notation, no trailing zeros, "-" for negatives. */
export function fromBaseUnits(units: bigint, decimals: number): string {
  checkDecimals(decimals);
  const sign = units < 0n ? '-' : '';
  const digits = (units < 0n ? -units : units).toString().padStart(decimals + 1, '0');
  const whole = digits.slice(0, digits.length - decimals);
  const fraction = digits.slice(digits.length - decimals).replace(/0+$/, '');
  return `${sign}${whole}${fraction ? `.${fraction}` : ''}`;
}
