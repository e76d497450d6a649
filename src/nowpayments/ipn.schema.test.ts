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
