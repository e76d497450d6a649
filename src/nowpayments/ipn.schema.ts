import { Decimal } from 'decimal.js';
import { z } from 'zod';
import { NP_STATUSES, type NpStatus } from '../machines/payment.events.js';

// NowPayments sends ids and amounts sometimes as JSON numbers, sometimes as strings, and fields are
// null or absent depending on how the payment was created. Everything here normalises to strings so
// the rest of the engine never does arithmetic on a double.

// The statuses are the machine's: one list, so a status the machine has no event for cannot be parsed.
export const PAYMENT_STATUSES = NP_STATUSES;
export type PaymentStatus = NpStatus;

// Ids are 10-11 digit integers today. A number above 2^53 has already been rounded by JSON.parse, so we
// reject it rather than store a different id; a string keeps every digit.
const idString = z
  .union([z.number(), z.string()], {
    error: (issue) => (issue.input === undefined ? 'required' : 'expected an integer id (number or digit string)'),
  })
  .transform((value, ctx) => {
    if (typeof value === 'number') {
      if (Number.isSafeInteger(value) && value >= 0) return String(value);
      ctx.issues.push({ code: 'custom', input: value, message: 'id is not a non-negative integer below 2^53' });
      return z.NEVER;
    }
    if (/^\d{1,40}$/.test(value)) return value;
    ctx.issues.push({ code: 'custom', input: value, message: 'id must be a string of digits' });
    return z.NEVER;
  });

// invoice_id and purchase_id are only echoed back and correlated, so any string is kept; a number still
// has to be a safe integer for the same reason as above.
const looseId = z
  .union([z.number(), z.string().min(1).max(100)], { error: 'expected an id (number or string)' })
  .transform((value, ctx) => {
    if (typeof value === 'string') return value;
    if (Number.isSafeInteger(value)) return String(value);
    ctx.issues.push({ code: 'custom', input: value, message: 'numeric id is not an integer below 2^53' });
    return z.NEVER;
  });

// Plain decimal, optionally with an exponent. The exponent is capped so "1e999999" cannot make toFixed()
// allocate a huge string.
const DECIMAL = /^-?\d+(\.\d+)?([eE][+-]?\d{1,3})?$/;
const MAX_EXPONENT = 100;

function toExactDecimal(text: string): string | undefined {
  if (text.length > 100 || !DECIMAL.test(text)) return undefined;
  const d = new Decimal(text);
  if (!d.isFinite() || (!d.isZero() && Math.abs(d.e) > MAX_EXPONENT)) return undefined;
  // A Decimal built from a string is not rounded to the configured precision, so toFixed() without an
  // argument prints exactly the value given (normalised: no exponent, no trailing zeros, "-0" -> "0").
  return d.toFixed();
}

// For numbers we take String(n), the shortest text that parses back to the same double: exactly what
// NowPayments put on the wire as long as it has at most ~15 significant digits. Its amounts carry at most
// ~9 decimals (crypto) or 2 (fiat), so 0.1 arrives as "0.1", not 0.1000000000000000055...
const decimalString = z
  .union([z.number(), z.string()], { error: 'expected an amount (number or decimal string)' })
  .transform((value, ctx) => {
    const text = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : '') : value;
    const exact = toExactDecimal(text);
    if (exact !== undefined) return exact;
    ctx.issues.push({ code: 'custom', input: value, message: `not a decimal amount: ${JSON.stringify(value)}` });
    return z.NEVER;
  });

// Timestamps arrive as ISO strings or as epoch milliseconds; we keep them as given, as text.
const timestampString = z
  .union([z.string(), z.number()], { error: 'expected a timestamp (string or number)' })
  .transform((value) => String(value));

const optionalText = z.string().nullish();

export const ipnSchema = z
  .object({
    payment_id: idString,
    parent_payment_id: idString.nullish(),
    invoice_id: looseId.nullish(),
    payment_status: z.enum(PAYMENT_STATUSES, {
      error: (issue) =>
        issue.input === undefined ? 'required' : `unknown payment status ${JSON.stringify(issue.input)}`,
    }),
    order_id: optionalText,
    pay_address: optionalText,
    price_amount: decimalString.nullish(),
    price_currency: optionalText,
    pay_amount: decimalString.nullish(),
    actually_paid: decimalString.nullish(),
    pay_currency: optionalText,
    outcome_amount: decimalString.nullish(),
    outcome_currency: optionalText,
    purchase_id: looseId.nullish(),
    updated_at: timestampString.nullish(),
  })
  // Keep unknown keys (fee, payment_extra_ids, actually_paid_at_fiat, ...): NowPayments adds fields
  // without notice and we store the body for audit.
  .loose();

export type Ipn = z.infer<typeof ipnSchema>;

export type ParseIpnResult = { ok: true; ipn: Ipn } | { ok: false; error: string };

export function parseIpn(body: unknown): ParseIpnResult {
  const result = ipnSchema.safeParse(body);
  if (result.success) return { ok: true, ipn: result.data };
  // One line per problem, each starting with the field it is about, e.g.
  // "payment_status: unknown payment status "paid"".
  const error = result.error.issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(body)'}: ${issue.message}`)
    .join('; ');
  return { ok: false, error };
}
