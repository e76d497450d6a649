import { z } from 'zod';
import { isDecimalString } from '../domain/money.js';

// NowPayments REST API (invoice creation and payment look-ups for reconciliation). The base URL is
// configuration, so tests and the sandbox point it at the fake in src/sandbox/nowpayments.fake.ts.

export interface InvoiceRequest {
  priceAmount: string; // exact decimal; written as a JSON number literal at the wire (invoiceBody)
  priceCurrency: string;
  orderId: string;
  orderDescription: string;
  ipnCallbackUrl: string;
  successUrl: string;
  cancelUrl: string;
}

const idSchema = z.union([z.string(), z.number()]).transform(String);
const invoiceSchema = z.looseObject({ id: idSchema, invoice_url: z.string() });
const paymentListSchema = z.looseObject({ data: z.array(z.looseObject({})) });

export class NowPaymentsError extends Error {
  constructor(message: string, public readonly status: number | null) {
    super(message);
    this.name = 'NowPaymentsError';
  }
}

export interface NowPaymentsClient {
  createInvoice(request: InvoiceRequest): Promise<{ invoiceId: string; invoiceUrl: string }>;
  /** The payment's current fields in IPN shape (payment_id, payment_status, amounts...). */
  getPayment(paymentId: string): Promise<Record<string, unknown>>;
  listPaymentsByInvoice(invoiceId: string): Promise<Record<string, unknown>[]>;
}

/**
 * NowPayments takes price_amount as a JSON number. It is written as the literal of the exact decimal
 * string, never through a JS number, so 9.99 goes out as 9.99 and not as the nearest double.
 */
export function invoiceBody(request: InvoiceRequest): string {
  if (!isDecimalString(request.priceAmount)) throw new NowPaymentsError(`price ${request.priceAmount} is not a decimal amount`, null);
  const rest = JSON.stringify({
    price_currency: request.priceCurrency,
    order_id: request.orderId,
    order_description: request.orderDescription,
    ipn_callback_url: request.ipnCallbackUrl,
    success_url: request.successUrl,
    cancel_url: request.cancelUrl,
  });
  return `{"price_amount":${request.priceAmount},${rest.slice(1)}`;
}

export function createNowPaymentsClient(options: { baseUrl: string; apiKey: string; timeoutMs?: number }): NowPaymentsClient {
  const base = options.baseUrl.replace(/\/+$/, '');
  // An error body may echo the key we sent ("Invalid api key: ..."); our errors never carry it on.
  const withoutKey = (text: string) => (options.apiKey.length > 0 ? text.split(options.apiKey).join('[Redacted]') : text);
  async function call(method: 'GET' | 'POST', path: string, body?: string): Promise<unknown> {
    try {
      return await request(method, path, body);
    } catch (error) {
      if (error instanceof NowPaymentsError) throw new NowPaymentsError(withoutKey(error.message), error.status);
      throw error;
    }
  }
  async function request(method: 'GET' | 'POST', path: string, body?: string): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, {
        method,
        headers: { 'x-api-key': options.apiKey, ...(body ? { 'content-type': 'application/json' } : {}) },
        body,
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
    } catch (error) {
      throw new NowPaymentsError(`NowPayments ${method} ${path} failed: ${(error as Error).message}`, null);
    }
    const text = await response.text();
    if (!response.ok) throw new NowPaymentsError(`NowPayments ${method} ${path} answered ${response.status}: ${text.slice(0, 300)}`, response.status);
    try {
      return JSON.parse(text);
    } catch {
      throw new NowPaymentsError(`NowPayments ${method} ${path} answered with non-JSON`, response.status);
    }
  }
  return {
    async createInvoice(request) {
      const answer = invoiceSchema.parse(
        await call('POST', '/v1/invoice', invoiceBody(request)),
      );
      return { invoiceId: answer.id, invoiceUrl: answer.invoice_url };
    },
    async getPayment(paymentId) {
      return z.looseObject({}).parse(await call('GET', `/v1/payment/${encodeURIComponent(paymentId)}`));
    },
    async listPaymentsByInvoice(invoiceId) {
      return paymentListSchema.parse(await call('GET', `/v1/payment/?invoiceId=${encodeURIComponent(invoiceId)}&limit=100&page=0`)).data;
    },
  };
}
