import { Decimal } from 'decimal.js';

// Money never passes through a JS number: amounts travel as decimal strings and are compared with
// decimal.js. A float would make 0.1 + 0.2 > 0.3 and let an underpayment of one satoshi look paid.

const DECIMAL = /^-?(?:\d+)(?:\.\d+)?$/;

export type DecimalString = string;

export function isDecimalString(value: unknown): value is DecimalString {
  return typeof value === 'string' && DECIMAL.test(value);
}

/** Normalises a decimal given as string (or exponent form) to plain fixed notation; throws on garbage. */
export function toDecimalString(value: string | number | bigint): DecimalString {
  if (typeof value === 'number' && !Number.isFinite(value)) throw new Error(`not a finite amount: ${value}`);
  const d = new Decimal(typeof value === 'bigint' ? value.toString() : value);
  if (!d.isFinite()) throw new Error(`not a finite amount: ${String(value)}`);
  return d.toFixed();
}

export function gte(a: DecimalString, b: DecimalString): boolean {
  return new Decimal(a).gte(new Decimal(b));
}

export function gt(a: DecimalString, b: DecimalString): boolean {
  return new Decimal(a).gt(new Decimal(b));
}

export function add(a: DecimalString, b: DecimalString): DecimalString {
  return new Decimal(a).plus(new Decimal(b)).toFixed();
}

export function sub(a: DecimalString, b: DecimalString): DecimalString {
  return new Decimal(a).minus(new Decimal(b)).toFixed();
}

/** a × percent / 100, rounded down to `places` so a split never pays out more than came in. */
export function percentOf(a: DecimalString, percent: DecimalString, places = 8): DecimalString {
  return new Decimal(a).times(new Decimal(percent)).div(100).toDecimalPlaces(places, Decimal.ROUND_DOWN).toFixed();
}
