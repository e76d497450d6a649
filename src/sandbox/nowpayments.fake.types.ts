import type { PaymentStatus } from '../nowpayments/ipn.schema.js';
import type { IncomingMessage } from 'node:http';
import type { SignatureForm } from '../nowpayments/signature.js';

// The shapes of the fake NowPayments (src/sandbox/nowpayments.fake.ts): its invoices and payments as
// NowPayments writes them, and the controls tests use.

export interface FakeInvoice {
  id: string;
  order_id: string | null;
  order_description: string | null;
  price_amount: string;
  price_currency: string;
  pay_currency: string | null;
  ipn_callback_url: string | null;
  invoice_url: string;
  success_url: string | null;
  cancel_url: string | null;
  created_at: string;
  updated_at: string;
}

export interface FakePayment {
  payment_id: number;
  parent_payment_id: number | null;
  invoice_id: number;
  payment_status: PaymentStatus;
  pay_address: string;
  price_amount: number | string;
  price_currency: string;
  pay_amount: number | string;
  actually_paid: number | string;
  pay_currency: string;
  order_id: string | null;
  order_description: string | null;
  purchase_id: string;
  outcome_amount: number | string;
  outcome_currency: string;
  created_at: string;
  updated_at: string;
  // IPN-only fields: not returned by GET /v1/payment/:id.
  fee: { currency: string; depositFee: number; withdrawalFee: number; serviceFee: number };
  payment_extra_ids: unknown;
  [extra: string]: unknown;
}

export interface PayOptions {
  status: PaymentStatus;
  actuallyPaid?: number | string;
  payAmount?: number | string;
  payCurrency?: string;
  outcomeAmount?: number | string;
  outcomeCurrency?: string;
  /** Update this payment rather than the invoice's latest one. */
  paymentId?: number;
  /** A repeat deposit to the same address: a new payment whose parent_payment_id is the first one. */
  child?: boolean;
  /** The deposit address of a new payment (default: a random TRON-style address). */
  payAddress?: string;
  /** Anything else, merged last (e.g. `{ fee: ..., payment_extra_ids: null }`). */
  fields?: Record<string, unknown>;
}

export interface SendIpnOptions {
  form?: SignatureForm;
  callbackUrl?: string;
  /** Changes the body after it was signed, to simulate tampering in transit. */
  tamper?: (body: Record<string, unknown>) => void;
  /** Sign with another secret. */
  secret?: string;
  /** Send this header instead of the computed one; null sends no header. */
  signature?: string | null;
  /** Send ids and amounts as JSON strings, as NowPayments sometimes does. */
  asStrings?: boolean;
}

export interface SentIpn {
  url: string;
  body: Record<string, unknown>;
  signature: string | null;
  status: number;
  responseBody: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  body: unknown;
  headers: IncomingMessage['headers'];
}

export interface FakeNowPayments {
  url: string;
  close(): Promise<void>;
  invoices: Map<string, FakeInvoice>;
  payments: Map<number, FakePayment>;
  requests: RecordedRequest[];
  ipns: SentIpn[];
  pay(invoiceIdOrOrderId: string | number, options: PayOptions): FakePayment;
  sendIpn(payment: FakePayment | number, options?: SendIpnOptions): Promise<{ status: number; body: string }>;
  /** The IPN sendIpn would send now (signed; the same bytes each time for an unchanged payment), for a caller that sends it itself (a load generator); not recorded in `ipns`. */
  ipnRequest(payment: FakePayment | number, options?: SendIpnOptions): { url: string; headers: Record<string, string>; body: string };
  /** Ids handed out from now on are above these (ids a previous run left in a database must never come again). */
  raiseIdsAbove(floor: { invoiceId?: number | null; paymentId?: number | null }): void;
  /** The ids the next invoice and the next payment will get. */
  nextIds(): { invoiceId: number; paymentId: number };
}

export interface FakeNowPaymentsOptions {
  apiKey: string;
  ipnSecret: string;
  /**
   * First invoice and payment ids. Default: realistic 10-digit constants, so a test run is reproducible.
   * A fake that outlives its process's memory (the sandbox, restarted on the same database) must not
   * start over: it passes ids derived from the clock (see idsFromClock) and raises them above the
   * database's (raiseIdsAbove).
   */
  firstIds?: { invoiceId: number; paymentId: number };
  /** The hosted invoice page for an invoice id (default: the fake's own /payment/?iid=). */
  invoiceUrl?: (invoiceId: string) => string;
}
