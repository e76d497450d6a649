import { describe, expect, it } from 'vitest';
import { invoiceBody } from './client.js';

const request = { priceCurrency: 'usd', orderId: 'o1', orderDescription: 'd', ipnCallbackUrl: 'u', successUrl: 's', cancelUrl: 'c' };

describe('invoice body', () => {
  it('writes the price as the exact decimal literal, never through a JS number', () => {
    const body = invoiceBody({ ...request, priceAmount: '12345678901234567.89' });
    expect(body.startsWith('{"price_amount":12345678901234567.89,')).toBe(true);
    expect(JSON.parse(body)).toMatchObject({ order_id: 'o1', cancel_url: 'c' });
  });
  it('refuses anything that is not a decimal amount instead of sending it', () => {
    expect(() => invoiceBody({ ...request, priceAmount: '1e3' })).toThrow(/not a decimal amount/);
    expect(() => invoiceBody({ ...request, priceAmount: '9.99,"x":1' })).toThrow(/not a decimal amount/);
  });
});
