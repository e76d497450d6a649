import { z } from 'zod';
import { toDecimalString, type DecimalString } from '../../domain/money.js';

// The parts of ChangeNow v2 answers we read. Lenient where ChangeNow is loose (extra fields pass,
// amounts come as JSON numbers or strings, optional fields may be null or missing) and strict where a
// wrong value would move money wrongly (amounts must be exact decimals, the status must be one we know).

export const EXCHANGE_STATUSES = [
  'new',
  'waiting',
  'confirming',
  'exchanging',
  'sending',
  'finished',
  'failed',
  'refunded',
  'verifying',
] as const;
export type ExchangeStatus = (typeof EXCHANGE_STATUSES)[number];

/** Statuses after which nothing changes any more. */
export const FINAL_EXCHANGE_STATUSES: readonly ExchangeStatus[] = ['finished', 'failed', 'refunded'];

export function isFinalExchangeStatus(status: ExchangeStatus): boolean {
  return FINAL_EXCHANGE_STATUSES.includes(status);
}

// A JSON number literal as written on the wire (non-negative: no amount we read is negative).
const AMOUNT_TEXT = /^\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * JSON.parse, except that every number literal arrives as its source text (a string), so 0.1 stays
 * '0.1' and 123456789.123456789012345678 keeps all its digits. Node 20 has no reviver source access,
 * hence this pre-pass: outside strings, each number literal is wrapped in quotes before JSON.parse.
 * A malformed literal (01, 1., .5) is a SyntaxError, as it would be for JSON.parse.
 */
export function parseJsonKeepingNumbers(text: string): unknown {
  let out = '';
  let copied = 0;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      i++;
      while (i < text.length && text.charCodeAt(i) !== 0x22) i += text.charCodeAt(i) === 0x5c /* \ */ ? 2 : 1;
      i++;
      continue;
    }
    if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      const start = i;
      while (i < text.length && /[-+.eE0-9]/.test(text.charAt(i))) i++;
      const literal = text.slice(start, i);
      if (!/^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/.test(literal)) {
        throw new SyntaxError(`malformed number in JSON at position ${start}`);
      }
      out += `${text.slice(copied, start)}"${literal}"`;
      copied = i;
      continue;
    }
    i++;
  }
  return JSON.parse(out + text.slice(copied));
}

/**
 * An amount as a plain decimal string. A string is taken as written (it comes from
 * parseJsonKeepingNumbers or from ChangeNow sending a string); a JS number (someone handed us already
 * parsed JSON) is only accepted when finite, and goes through its shortest round-trip text.
 */
export const amountSchema = z.union([z.string(), z.number()]).transform((value, ctx): DecimalString => {
  const text = typeof value === 'number' ? (Number.isFinite(value) && value >= 0 ? String(value) : '') : value.trim();
  if (!AMOUNT_TEXT.test(text)) {
    ctx.addIssue({ code: 'custom', message: `not a non-negative decimal amount: ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return toDecimalString(text);
});

/** An amount ChangeNow leaves null (or '' / missing) until it is known. */
// (.nullish() before the transform: zod 4 treats a key as optional only if the pipe's input is.)
const optionalAmount = z
  .union([z.literal(''), amountSchema])
  .nullish()
  .transform((v): DecimalString | null => (v === '' || v === undefined || v === null ? null : v));

const optionalText = z
  .string()
  .nullish()
  .transform((v): string | null => (v === undefined || v === null || v === '' ? null : v));

const idText = z.union([z.string().min(1), z.number()]).transform(String);

export const minAmountAnswer = z.looseObject({
  minAmount: amountSchema,
});

export const estimatedAmountAnswer = z.looseObject({
  fromAmount: amountSchema,
  toAmount: amountSchema,
  rateId: z.string().min(1),
  validUntil: z.string().min(1),
  warningMessage: optionalText,
});

export const createdExchangeAnswer = z.looseObject({
  id: idText,
  payinAddress: z.string().min(1),
  payoutAddress: z.string().min(1),
  payinExtraId: optionalText,
  fromAmount: amountSchema,
  toAmount: amountSchema,
});

export const exchangeAnswer = z.looseObject({
  id: idText,
  status: z.enum(EXCHANGE_STATUSES),
  actionsAvailable: z.boolean().optional(),
  fromCurrency: z.string(),
  fromNetwork: optionalText,
  toCurrency: z.string(),
  toNetwork: optionalText,
  expectedAmountFrom: optionalAmount,
  expectedAmountTo: optionalAmount,
  amountFrom: optionalAmount,
  amountTo: optionalAmount,
  payinAddress: optionalText,
  payoutAddress: optionalText,
  payinHash: optionalText,
  payoutHash: optionalText,
  refundAddress: optionalText,
  refundHash: optionalText,
  createdAt: optionalText,
  updatedAt: optionalText,
  depositReceivedAt: optionalText,
});

/** The body of a 4xx/5xx answer: `{ error, message }`, both optional because proxies answer HTML. */
export const errorAnswer = z.looseObject({
  error: z.string().optional(),
  message: z.string().optional(),
});
