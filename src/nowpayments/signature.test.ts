import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalForms, canonicalString, signIpn, verifyIpnSignature } from './signature.js';

const SECRET = 'ipn-secret-for-tests';

// Shaped like the IPN in NowPayments' docs, parsed the way the route parses it.
const RAW = `{
  "payment_id": 5077125051,
  "parent_payment_id": null,
  "invoice_id": 4522625843,
  "payment_status": "finished",
  "pay_address": "TNDFkiSmBQorNFacb3735q8MnT29sn8BLn",
  "payin_extra_id": null,
  "price_amount": 5,
  "price_currency": "usd",
  "pay_amount": 165.652609,
  "actually_paid": 180,
  "actually_paid_at_fiat": 0,
  "pay_currency": "trx",
  "order_id": "ord_01HZX3",
  "order_description": "Premium channel/30 days",
  "purchase_id": "4944856743",
  "outcome_amount": 178.9005,
  "outcome_currency": "trx",
  "payment_extra_ids": [5077125052, 5077125053],
  "fee": { "withdrawalFee": 0, "currency": "trx", "serviceFee": 0, "depositFee": 0.09853637216235617 },
  "updated_at": 1656587530000
}`;

const parse = (): Record<string, unknown> => JSON.parse(RAW) as Record<string, unknown>;

// Independent of the implementation: HMAC over a literal string.
const hmacHex = (s: string, secret = SECRET): string => createHmac('sha512', secret).update(s).digest('hex');

const RECURSIVE =
  '{"actually_paid":180,"actually_paid_at_fiat":0,"fee":{"currency":"trx","depositFee":0.09853637216235617,' +
  '"serviceFee":0,"withdrawalFee":0},"invoice_id":4522625843,"order_description":"Premium channel/30 days",' +
  '"order_id":"ord_01HZX3","outcome_amount":178.9005,"outcome_currency":"trx","parent_payment_id":null,' +
  '"pay_address":"TNDFkiSmBQorNFacb3735q8MnT29sn8BLn","pay_amount":165.652609,"pay_currency":"trx",' +
  '"payin_extra_id":null,"payment_extra_ids":[5077125052,5077125053],"payment_id":5077125051,' +
  '"payment_status":"finished","price_amount":5,"price_currency":"usd","purchase_id":"4944856743",' +
  '"updated_at":1656587530000}';

describe('canonical forms', () => {
  it('recursive: keys sorted at every depth, arrays kept, slashes not escaped', () => {
    expect(canonicalString(parse(), 'recursive')).toBe(RECURSIVE);
  });

  it('js-sample: same, but arrays become index-keyed objects', () => {
    expect(canonicalString(parse(), 'js-sample')).toBe(
      RECURSIVE.replace('[5077125052,5077125053]', '{"0":5077125052,"1":5077125053}'),
    );
  });

  it('legacy: the replacer allow-list empties nested objects', () => {
    const s = canonicalString(parse(), 'legacy');
    expect(s).toContain('"fee":{}');
    // Array elements are not filtered by a replacer array, only object keys are.
    expect(s).toContain('"payment_extra_ids":[5077125052,5077125053]');
  });

  it('recursive-ascii escapes non-ASCII like Python ensure_ascii / PHP json_encode', () => {
    const body = { order_description: 'Подписка', a: 1 };
    expect(canonicalString(body, 'recursive')).toBe('{"a":1,"order_description":"Подписка"}');
    expect(canonicalString(body, 'recursive-ascii')).toBe(
      '{"a":1,"order_description":"\\u041f\\u043e\\u0434\\u043f\\u0438\\u0441\\u043a\\u0430"}',
    );
  });

  it('sorts integer-like keys as strings in the recursive form, as Python and PHP do', () => {
    const body = { m: { '10': 'x', '2': 'y', a: 'z' } };
    expect(canonicalString(body, 'recursive')).toBe('{"m":{"10":"x","2":"y","a":"z"}}');
    // A JS object cannot hold that order, so the JS sample prints them numerically.
    expect(canonicalString(body, 'js-sample')).toBe('{"m":{"2":"y","10":"x","a":"z"}}');
  });

  it('offers legacy only for flat bodies, and deduplicates identical strings', () => {
    const nested = canonicalForms(parse());
    expect(nested).toHaveLength(2); // recursive (= recursive-ascii here) and js-sample
    expect(nested).not.toContain(canonicalString(parse(), 'legacy'));

    const flat = { payment_id: 1, payment_status: 'finished', order_id: 'o1' };
    // All four forms coincide for a flat ASCII body.
    expect(canonicalForms(flat)).toEqual(['{"order_id":"o1","payment_id":1,"payment_status":"finished"}']);
  });

  it('has no forms for a body that is not a JSON object', () => {
    expect(canonicalForms([1, 2])).toEqual([]);
    expect(canonicalForms('x')).toEqual([]);
    expect(canonicalForms(null)).toEqual([]);
  });
});

describe('verifyIpnSignature', () => {
  it('accepts a signature over the recursive form (checked against a literal HMAC)', () => {
    expect(signIpn(parse(), SECRET)).toBe(hmacHex(RECURSIVE));
    expect(verifyIpnSignature(parse(), hmacHex(RECURSIVE), SECRET)).toBe(true);
  });

  it.each(['recursive', 'recursive-ascii', 'js-sample'] as const)('accepts the %s form', (form) => {
    expect(verifyIpnSignature(parse(), signIpn(parse(), SECRET, form), SECRET)).toBe(true);
  });

  it('accepts the legacy form for a flat body', () => {
    const flat = { payment_id: 7, payment_status: 'finished', actually_paid: 0.5, order_id: 'o7' };
    expect(verifyIpnSignature(flat, signIpn(flat, SECRET, 'legacy'), SECRET)).toBe(true);
  });

  it('accepts upper-case hex', () => {
    expect(verifyIpnSignature(parse(), signIpn(parse(), SECRET).toUpperCase(), SECRET)).toBe(true);
  });

  it('rejects a changed amount', () => {
    const sig = signIpn(parse(), SECRET);
    const body = parse();
    body.actually_paid = 1800;
    expect(verifyIpnSignature(body, sig, SECRET)).toBe(false);
  });

  it('rejects a changed nested fee field under the recursive form', () => {
    const sig = signIpn(parse(), SECRET, 'recursive');
    const body = parse();
    (body.fee as Record<string, unknown>).serviceFee = 100;
    expect(verifyIpnSignature(body, sig, SECRET)).toBe(false);
  });

  it('rejects a changed array element under the js-sample form', () => {
    const sig = signIpn(parse(), SECRET, 'js-sample');
    const body = parse();
    body.payment_extra_ids = [1, 2];
    expect(verifyIpnSignature(body, sig, SECRET)).toBe(false);
  });

  it('refuses legacy for a nested body, because legacy does not cover nested fields', () => {
    const original = parse();
    const altered = parse();
    (altered.fee as Record<string, unknown>).serviceFee = 100;
    // The whole problem in one line: the legacy signature does not change when a nested field does.
    expect(signIpn(altered, SECRET, 'legacy')).toBe(signIpn(original, SECRET, 'legacy'));
    // So a legacy signature is never accepted on a nested body, genuine or altered.
    expect(verifyIpnSignature(original, signIpn(original, SECRET, 'legacy'), SECRET)).toBe(false);
    expect(verifyIpnSignature(altered, signIpn(original, SECRET, 'legacy'), SECRET)).toBe(false);
  });

  it('rejects a wrong secret', () => {
    expect(verifyIpnSignature(parse(), signIpn(parse(), 'another-secret'), SECRET)).toBe(false);
  });

  it('rejects an empty configured secret even with a matching signature', () => {
    expect(verifyIpnSignature(parse(), signIpn(parse(), ''), '')).toBe(false);
  });

  it('rejects a missing header', () => {
    expect(verifyIpnSignature(parse(), undefined, SECRET)).toBe(false);
    expect(verifyIpnSignature(parse(), '', SECRET)).toBe(false);
  });

  it('rejects non-hex and wrong-length headers without throwing', () => {
    const good = signIpn(parse(), SECRET);
    expect(verifyIpnSignature(parse(), 'z'.repeat(128), SECRET)).toBe(false);
    expect(verifyIpnSignature(parse(), `${good.slice(0, 127)}g`, SECRET)).toBe(false);
    expect(verifyIpnSignature(parse(), good.slice(0, 126), SECRET)).toBe(false);
    expect(verifyIpnSignature(parse(), `${good}00`, SECRET)).toBe(false);
    expect(verifyIpnSignature(parse(), 'sha512=' + good, SECRET)).toBe(false);
  });

  it('rejects a body that is not an object', () => {
    expect(verifyIpnSignature([parse()], signIpn(parse(), SECRET), SECRET)).toBe(false);
  });
});

describe('keys a signature must cover, and bodies it must not recurse into', () => {
  it('a "__proto__" key added to a signed body breaks every form (it is part of the canonical string)', () => {
    const signed = parse();
    for (const form of ['recursive', 'recursive-ascii', 'js-sample'] as const) {
      const header = signIpn(signed, SECRET, form);
      // JSON.parse makes "__proto__" an own key, as it arrives on the wire.
      const tampered = JSON.parse(RAW.replace('{', '{"__proto__": {"actually_paid": 999999},')) as Record<string, unknown>;
      expect(Object.prototype.hasOwnProperty.call(tampered, '__proto__')).toBe(true);
      expect(verifyIpnSignature(tampered, header, SECRET), form).toBe(false);
      // Nested too (the js-sample form used to rebuild objects with `{}` assignment, which dropped it).
      const nested = JSON.parse(RAW.replace('"fee": {', '"fee": {"__proto__": {"x": 1},')) as Record<string, unknown>;
      expect(verifyIpnSignature(nested, header, SECRET), `${form} nested`).toBe(false);
    }
    expect(canonicalString(JSON.parse('{"__proto__":{"a":1},"b":2}'), 'js-sample')).toBe('{"__proto__":{"a":1},"b":2}');
  });

  it('a body nested deeper than 32 levels has no canonical form: no stack overflow, verification fails closed', () => {
    const depth = 100_000;
    const body = JSON.parse(`{"payment_id":1,"x":${'['.repeat(depth)}${']'.repeat(depth)}}`) as unknown;
    expect(canonicalForms(body)).toEqual([]);
    expect(canonicalString(body, 'js-sample')).toBeUndefined();
    expect(verifyIpnSignature(body, 'a'.repeat(128), SECRET)).toBe(false);
    expect(() => signIpn(body, SECRET)).toThrow(TypeError);
    // 32 levels (the top object included) still have their forms.
    const ok = JSON.parse(`{"x":${'['.repeat(31)}${']'.repeat(31)}}`) as unknown;
    expect(verifyIpnSignature(ok, signIpn(ok, SECRET, 'js-sample'), SECRET)).toBe(true);
  });
});
