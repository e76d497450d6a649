import { Decimal } from 'decimal.js';
import { describe, expect, it } from 'vitest';
import { parseIpn, type Ipn } from './ipn.schema.js';

const asNumbers = {
  payment_id: 5077125051,
  parent_payment_id: null,
  invoice_id: 4522625843,
  payment_status: 'finished',
  pay_address: 'TNDFkiSmBQorNFacb3735q8MnT29sn8BLn',
  price_amount: 5,
  price_currency: 'usd',
  pay_amount: 165.652609,
  actually_paid: 180.1,
  pay_currency: 'trx',
  order_id: 'ord_1',
  outcome_amount: 178.9005,
  outcome_currency: 'trx',
  purchase_id: 4944856743,
  updated_at: 1656587530000,
  fee: { currency: 'trx', depositFee: 0.1, withdrawalFee: 0, serviceFee: 0 },
  payment_extra_ids: [1, 2],
};

const asStrings = {
  ...asNumbers,
  payment_id: '5077125051',
  invoice_id: '4522625843',
  price_amount: '5',
  pay_amount: '165.652609',
  actually_paid: '180.10',
  outcome_amount: '178.9005',
  purchase_id: '4944856743',
  updated_at: '1656587530000',
};

function ok(body: unknown): Ipn {
  const r = parseIpn(body);
  if (!r.ok) throw new Error(r.error);
  return r.ipn;
}

function error(body: unknown): string {
  const r = parseIpn(body);
  if (r.ok) throw new Error('expected a parse failure');
  return r.error;
}

describe('parseIpn', () => {
  it('gives the same result for numbers and strings', () => {
    expect(ok(asNumbers)).toEqual(ok(asStrings));
    expect(ok(asNumbers)).toMatchObject({
      payment_id: '5077125051',
      invoice_id: '4522625843',
      actually_paid: '180.1',
      pay_amount: '165.652609',
      purchase_id: '4944856743',
    });
  });

  it('keeps unknown keys', () => {
    const ipn = ok(asNumbers);
    expect(ipn.fee).toEqual(asNumbers.fee);
    expect(ipn.payment_extra_ids).toEqual([1, 2]);
  });

  it('keeps decimal values exact: 0.1 and 0.2 add up to 0.3', () => {
    const a = ok({ ...asNumbers, actually_paid: 0.1 }).actually_paid;
    const b = ok({ ...asNumbers, actually_paid: 0.2 }).actually_paid;
    expect([a, b]).toEqual(['0.1', '0.2']);
    expect(new Decimal(a as string).plus(b as string).toFixed()).toBe('0.3');
    // A double that really is 0.30000000000000004 is kept as such, not rounded to look nicer.
    expect(ok({ ...asNumbers, actually_paid: 0.1 + 0.2 }).actually_paid).toBe('0.30000000000000004');
  });

  it('normalises exponent forms and small numbers to plain decimals', () => {
    expect(ok({ ...asNumbers, pay_amount: 1e-7 }).pay_amount).toBe('0.0000001');
    expect(ok({ ...asNumbers, pay_amount: '1.5E-8' }).pay_amount).toBe('0.000000015');
    expect(ok({ ...asNumbers, pay_amount: '12345678901234567890.123456789' }).pay_amount).toBe(
      '12345678901234567890.123456789',
    );
  });

  it('rejects amounts that are not decimals, naming the field', () => {
    expect(error({ ...asNumbers, actually_paid: '1,5' })).toMatch(/^actually_paid: /);
    expect(error({ ...asNumbers, actually_paid: '0x10' })).toMatch(/^actually_paid: /);
    expect(error({ ...asNumbers, pay_amount: '1e999999' })).toMatch(/^pay_amount: /);
    expect(error({ ...asNumbers, price_amount: true })).toMatch(/^price_amount: /);
  });

  it('rejects a payment_id JSON.parse has already rounded', () => {
    const body = JSON.parse('{"payment_id": 90071992547409931, "payment_status": "finished"}') as unknown;
    expect(error(body)).toMatch(/^payment_id: /);
    expect(ok({ payment_id: '90071992547409931', payment_status: 'finished' }).payment_id).toBe('90071992547409931');
  });

  it('rejects a non-digit payment_id', () => {
    expect(error({ ...asNumbers, payment_id: '12a' })).toMatch(/^payment_id: /);
    expect(error({ ...asNumbers, payment_id: -1 })).toMatch(/^payment_id: /);
  });

  it('rejects an unknown status with a readable error naming payment_status', () => {
    expect(error({ ...asNumbers, payment_status: 'paid' })).toBe('payment_status: unknown payment status "paid"');
  });

  it('requires payment_id and payment_status, and nothing else', () => {
    expect(error({})).toBe('payment_id: required; payment_status: required');
    expect(ok({ payment_id: 1, payment_status: 'waiting' })).toEqual({ payment_id: '1', payment_status: 'waiting' });
  });

  it('accepts nulls for optional fields', () => {
    const ipn = ok({ payment_id: 1, payment_status: 'waiting', order_id: null, invoice_id: null, actually_paid: null });
    expect(ipn.order_id).toBeNull();
    expect(ipn.actually_paid).toBeNull();
  });

  it('rejects a body that is not an object', () => {
    expect(error('finished')).toMatch(/^\(body\): /);
  });
});

describe('parseIpn: text and numbers Postgres could never take are refused here, naming the field', () => {
  it('NUL and unpaired surrogates in text fields', () => {
    expect(error({ ...asNumbers, order_id: 'a\u0000b' })).toBe('order_id: must not contain a NUL character (U+0000)');
    expect(error({ ...asNumbers, pay_currency: '\udfff' })).toMatch(/^pay_currency: must not contain an unpaired UTF-16 surrogate/);
    expect(error({ ...asNumbers, invoice_id: 'x\ud800' })).toMatch(/^invoice_id: /);
    // The text \u0000 (backslash, u, four digits) is ordinary text.
    expect(ok({ ...asNumbers, order_id: 'a\\u0000b' }).order_id).toBe('a\\u0000b');
    // A surrogate pair is fine.
    expect(ok({ ...asNumbers, order_id: 'ord_\ud83d\ude00' }).order_id).toBe('ord_\ud83d\ude00');
  });

  it('bounded text: an order_id above 200 characters, other text above 1000', () => {
    expect(error({ ...asNumbers, order_id: 'x'.repeat(201) })).toBe('order_id: is longer than 200 characters');
    expect(error({ ...asNumbers, pay_address: 'x'.repeat(1001) })).toBe('pay_address: is longer than 1000 characters');
  });

  it('ids written as strings are the same id as the number: spaces, leading zeros, ".0"', () => {
    for (const id of ['5077125051', ' 5077125051 ', '05077125051', '5077125051.0', '5.077125051e9']) {
      expect(ok({ ...asNumbers, payment_id: id }).payment_id, id).toBe('5077125051');
    }
    expect(error({ ...asNumbers, payment_id: '5077125051.5' })).toMatch(/^payment_id: /);
    expect(error({ ...asNumbers, payment_id: '+5' })).toMatch(/^payment_id: /);
  });

  it('amounts written as strings with spaces are the same amount; an empty string is no amount (null)', () => {
    expect(ok({ ...asNumbers, actually_paid: ' 180.10 ' }).actually_paid).toBe('180.1');
    const blank = ok({ ...asNumbers, actually_paid: '', parent_payment_id: '', invoice_id: '', purchase_id: ' ', updated_at: '' });
    expect(blank).toMatchObject({ actually_paid: null, parent_payment_id: null, invoice_id: null, purchase_id: null, updated_at: null });
  });
});
