import { Decimal } from 'decimal.js';
import { z } from 'zod';
import { safeText } from '../domain/text.js';
import { NP_STATUSES, type NpStatus } from '../machines/payment.events.js';

// NowPayments sends ids and amounts sometimes as JSON numbers, sometimes as strings, and fields are
// null or absent depending on how the payment was created. Everything here normalises to strings so
// the rest of the engine never does arithmetic on a double.

// The statuses are the machine's: one list, so a status the machine has no event for cannot be parsed.
export const PAYMENT_STATUSES = NP_STATUSES;
export type PaymentStatus = NpStatus;

// Ids are 10-11 digit integers today. A number above 2^53 has already been rounded by JSON.parse, so we
// reject it rather than store a different id; a string keeps every digit. A string is read as the number
// it spells, so "5077125051", " 5077125051", "05077125051" and "5077125051.0" are the payment 5077125051
// sent as the number 5077125051 is: one payment, however NowPayments chose to write it.
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
    const exact = toExactDecimal(value.trim());
    if (exact !== undefined && /^\d{1,40}$/.test(exact)) return exact;
    ctx.issues.push({ code: 'custom', input: value, message: 'id must be a string of digits' });
    return z.NEVER;
  });

// invoice_id and purchase_id are only echoed back and correlated, so any string is kept; a number still
// has to be a safe integer for the same reason as above.
const looseId = z
  .union([z.number(), safeText().min(1).max(100)], { error: 'expected an id (number or string of 1 to 100 characters)' })
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
    const text = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : '') : value.trim();
    const exact = toExactDecimal(text);
    if (exact !== undefined) return exact;
    ctx.issues.push({ code: 'custom', input: value, message: `not a decimal amount: ${JSON.stringify(value)}` });
    return z.NEVER;
  });

// Timestamps arrive as ISO strings or as epoch milliseconds; we keep them as given, as text.
const timestampString = z
  .union([safeText().max(100), z.number()], { error: 'expected a timestamp (string of at most 100 characters, or number)' })
  .transform((value) => String(value));

// Text the engine keeps (in the snapshot, the journal, indexed columns): storable by Postgres and bounded,
// so a verified body that could never be written is parked here, naming the field, instead of failing in
// the database on every retry. An order_id is ours (at most 200 characters, as the status API accepts).
const optionalText = safeText().max(1000, 'is longer than 1000 characters').nullish();
const orderIdText = safeText().max(200, 'is longer than 200 characters').nullish();

// An empty string for an optional id or amount means "not given", as null does.
const blankAsNull = <T extends z.ZodType>(schema: T) => z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? null : value), schema.nullish());

export const ipnSchema = z
  .object({
    payment_id: idString,
    parent_payment_id: blankAsNull(idString),
    invoice_id: blankAsNull(looseId),
    payment_status: z.enum(PAYMENT_STATUSES, {
      error: (issue) =>
        issue.input === undefined ? 'required' : `unknown payment status ${JSON.stringify(issue.input)}`,
    }),
    order_id: orderIdText,
    pay_address: optionalText,
    price_amount: blankAsNull(decimalString),
    price_currency: optionalText,
    pay_amount: blankAsNull(decimalString),
    actually_paid: blankAsNull(decimalString),
    pay_currency: optionalText,
    outcome_amount: blankAsNull(decimalString),
    outcome_currency: optionalText,
    purchase_id: blankAsNull(looseId),
    updated_at: blankAsNull(timestampString),
  })
  // Keep unknown keys (fee, payment_extra_ids, actually_paid_at_fiat, ...): NowPayments adds fields
  // without notice and we store the body for audit.
  .loose();

export type Ipn = z.infer<typeof ipnSchema>;

/** The payment id a body names, normalised as parseIpn would, or null (for a body parked as a whole). */
export function paymentIdOf(body: unknown): string | null {
  if (typeof body !== 'object' || body === null || !Object.prototype.hasOwnProperty.call(body, 'payment_id')) return null;
  const parsed = idString.safeParse((body as { payment_id: unknown }).payment_id);
  return parsed.success ? parsed.data : null;
}

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
