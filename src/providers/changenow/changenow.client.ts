import type { z } from 'zod';
import { isDecimalString, type DecimalString } from '../../domain/money.js';
import { ChangeNowError, type ChangeNowErrorFields } from './changenow.errors.js';
import {
  createdExchangeAnswer,
  errorAnswer,
  estimatedAmountAnswer,
  exchangeAnswer,
  minAmountAnswer,
  parseJsonKeepingNumbers,
  type ExchangeStatus,
} from './changenow.schemas.js';

// ChangeNow v2 (fixed-rate swaps for instant payouts). The base URL is configuration, so tests and the
// sandbox point it at the fake in src/sandbox/changenow.fake.ts.
//
// The API key travels only in the x-changenow-api-key header. It is never in a URL, and every message
// this client builds is passed through redact(), including text ChangeNow sends back, so no error can
// carry it into a log. Redirects are not followed: fetch would resend our custom header to wherever
// the redirect points.
//
// Nothing here retries. In particular POST /exchange is sent exactly once per createExchange call:
// a second exchange for the same payout is a decision for the caller, who knows what it already holds.

export interface ChangeNowPair {
  /** Lower-case tickers and networks as ChangeNow spells them: 'eth' on 'eth', 'usdt' on 'eth'. */
  fromCurrency: string;
  fromNetwork: string;
  toCurrency: string;
  toNetwork: string;
}

export interface FixedRateEstimate {
  rateId: string;
  fromAmount: DecimalString;
  toAmount: DecimalString;
  /** ISO time after which ChangeNow no longer honours rateId. */
  validUntil: string;
  warningMessage: string | null;
}

export interface CreateExchangeRequest {
  pair: ChangeNowPair;
  fromAmount: DecimalString;
  /** Where ChangeNow pays out (the channel owner's wallet). */
  address: string;
  /** Where ChangeNow returns the coins if the swap fails (our host wallet). */
  refundAddress: string;
  rateId: string;
}

export interface CreatedExchange {
  id: string;
  /** Send exactly fromAmount of pair.fromCurrency here to fund the exchange. */
  payinAddress: string;
  payinExtraId: string | null;
  payoutAddress: string;
  fromAmount: DecimalString;
  toAmount: DecimalString;
}

export interface ExchangeState {
  id: string;
  status: ExchangeStatus;
  payinAddress: string | null;
  payoutAddress: string | null;
  refundAddress: string | null;
  payinHash: string | null;
  payoutHash: string | null;
  refundHash: string | null;
  expectedAmountFrom: DecimalString | null;
  expectedAmountTo: DecimalString | null;
  /** What actually arrived / left; null until known. */
  amountFrom: DecimalString | null;
  amountTo: DecimalString | null;
  createdAt: string | null;
  updatedAt: string | null;
  depositReceivedAt: string | null;
}

export interface ChangeNowClient {
  /** Smallest fromAmount ChangeNow accepts for a fixed-rate swap of this pair. */
  minAmount(pair: ChangeNowPair): Promise<DecimalString>;
  /** A fixed rate for exactly fromAmount, held by ChangeNow under rateId until validUntil. */
  estimateFixedRate(pair: ChangeNowPair, fromAmount: DecimalString): Promise<FixedRateEstimate>;
  /**
   * Creates one fixed-rate exchange (POST /exchange, never retried here).
   *
   * A ChangeNowError of kind 'timeout' (or 'unavailable' without a status, i.e. the connection broke)
   * means it is unknown whether the exchange was created. The caller must accept that an orphan
   * exchange may exist: it is harmless, because nobody funds it and ChangeNow lets it expire. What the
   * caller must not do is fund anything it did not get an answer for.
   */
  createExchange(request: CreateExchangeRequest): Promise<CreatedExchange>;
  getExchange(id: string): Promise<ExchangeState>;
}

export interface ChangeNowClientOptions {
  /** e.g. https://api.changenow.io/v2 (no trailing /exchange). */
  baseUrl: string;
  apiKey: string;
  /** Per request, including reading the body. Default 10 s. */
  timeoutMs?: number;
  /** For tests; defaults to the global fetch. */
  fetch?: typeof fetch;
}

type Method = 'GET' | 'POST';

export function createChangeNowClient(options: ChangeNowClientOptions): ChangeNowClient {
  const base = options.baseUrl.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 10_000;
  const doFetch = options.fetch ?? fetch;
  const key = options.apiKey;

  const redact = (text: string): string => (key.length > 0 ? text.split(key).join('[redacted]') : text);
  const fail = (message: string, fields: ChangeNowErrorFields): ChangeNowError =>
    new ChangeNowError(redact(message), fields.code === undefined ? fields : { ...fields, code: redact(fields.code) });

  // `what` names the request in messages: method, path and query (pair, amount, id; never the key),
  // without the base URL, which could carry userinfo.
  async function call<S extends z.ZodType>(method: Method, path: string, schema: S, body?: string): Promise<z.output<S>> {
    const what = `ChangeNow ${method} ${path}`;
    let response: Response;
    let text: string;
    try {
      response = await doFetch(`${base}${path}`, {
        method,
        headers: { 'x-changenow-api-key': key, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      throw transportError(what, error);
    }

    if (response.status === 429 || response.status >= 500) {
      const { code, message } = errorFields(text);
      throw fail(`${what} answered ${response.status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`, {
        kind: 'unavailable',
        retryable: true,
        status: response.status,
        ...(code ? { code } : {}),
      });
    }
    if (response.status >= 400) {
      const { code, message } = errorFields(text);
      throw fail(`${what} answered ${response.status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`, {
        kind: 'rejected',
        retryable: false,
        status: response.status,
        ...(code ? { code } : {}),
      });
    }
    if (response.status < 200 || response.status >= 300) {
      throw fail(`${what} answered ${response.status} (redirects are not followed)`, { kind: 'bad_answer', retryable: false, status: response.status });
    }

    let json: unknown;
    try {
      json = parseJsonKeepingNumbers(text);
    } catch {
      throw fail(`${what} answered ${response.status} with non-JSON`, { kind: 'bad_answer', retryable: false, status: response.status });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
      throw fail(`${what} answered ${response.status} with an unexpected shape: ${issues.slice(0, 500)}`, {
        kind: 'bad_answer',
        retryable: false,
        status: response.status,
      });
    }
    return parsed.data;
  }

  function transportError(what: string, error: unknown): ChangeNowError {
    const name = error instanceof Error ? error.name : '';
    if (name === 'TimeoutError') return fail(`${what} got no answer within ${timeoutMs} ms`, { kind: 'timeout', retryable: true });
    // undici says "fetch failed" and puts the reason (ECONNREFUSED, socket closed...) in cause.
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : undefined;
    const causeCode = cause && 'code' in cause && typeof cause.code === 'string' ? cause.code : undefined;
    const detail = [error instanceof Error ? error.message : String(error), causeCode ?? cause?.message].filter(Boolean).join(': ');
    return fail(`${what} failed: ${detail}`, { kind: 'unavailable', retryable: true, ...(causeCode ? { code: causeCode } : {}) });
  }

  function checkAmount(name: string, value: string): void {
    if (!isDecimalString(value) || !/[1-9]/.test(value) || value.startsWith('-')) {
      throw fail(`ChangeNow request refused before sending: ${name} ${JSON.stringify(value)} is not a positive decimal string`, {
        kind: 'rejected',
        retryable: false,
        code: 'invalid_request',
      });
    }
  }

  const pairQuery = (pair: ChangeNowPair): Record<string, string> => ({
    fromCurrency: pair.fromCurrency,
    toCurrency: pair.toCurrency,
    fromNetwork: pair.fromNetwork,
    toNetwork: pair.toNetwork,
  });
  const query = (params: Record<string, string>): string => new URLSearchParams(params).toString();

  return {
    async minAmount(pair) {
      const answer = await call('GET', `/exchange/min-amount?${query({ ...pairQuery(pair), flow: 'fixed-rate' })}`, minAmountAnswer);
      return answer.minAmount;
    },

    async estimateFixedRate(pair, fromAmount) {
      checkAmount('fromAmount', fromAmount);
      const answer = await call(
        'GET',
        `/exchange/estimated-amount?${query({ ...pairQuery(pair), fromAmount, flow: 'fixed-rate', useRateId: 'true' })}`,
        estimatedAmountAnswer,
      );
      return {
        rateId: answer.rateId,
        fromAmount: answer.fromAmount,
        toAmount: answer.toAmount,
        validUntil: answer.validUntil,
        warningMessage: answer.warningMessage,
      };
    },

    async createExchange(request) {
      checkAmount('fromAmount', request.fromAmount);
      // Amounts go out as JSON strings, as in ChangeNow's own examples: no JS number on the way.
      const body = JSON.stringify({
        fromCurrency: request.pair.fromCurrency,
        toCurrency: request.pair.toCurrency,
        fromNetwork: request.pair.fromNetwork,
        toNetwork: request.pair.toNetwork,
        fromAmount: request.fromAmount,
        toAmount: '',
        address: request.address,
        extraId: '',
        refundAddress: request.refundAddress,
        refundExtraId: '',
        userId: '',
        payload: '',
        contactEmail: '',
        flow: 'fixed-rate',
        type: 'direct',
        rateId: request.rateId,
      });
      const answer = await call('POST', '/exchange', createdExchangeAnswer, body);
      // Funding an exchange that pays someone else would be unrecoverable; refuse to hand it out.
      // (Lower-case compare: ChangeNow may echo an EVM address in another checksum casing.)
      if (answer.payoutAddress.toLowerCase() !== request.address.toLowerCase()) {
        throw fail(`ChangeNow POST /exchange created ${answer.id} with payout address ${answer.payoutAddress}, not ${request.address}`, {
          kind: 'bad_answer',
          retryable: false,
          code: 'payout_address_mismatch',
        });
      }
      return {
        id: answer.id,
        payinAddress: answer.payinAddress,
        payinExtraId: answer.payinExtraId,
        payoutAddress: answer.payoutAddress,
        fromAmount: answer.fromAmount,
        toAmount: answer.toAmount,
      };
    },

    async getExchange(id) {
      const a = await call('GET', `/exchange/by-id?${query({ id })}`, exchangeAnswer);
      return {
        id: a.id,
        status: a.status,
        payinAddress: a.payinAddress,
        payoutAddress: a.payoutAddress,
        refundAddress: a.refundAddress,
        payinHash: a.payinHash,
        payoutHash: a.payoutHash,
        refundHash: a.refundHash,
        expectedAmountFrom: a.expectedAmountFrom,
        expectedAmountTo: a.expectedAmountTo,
        amountFrom: a.amountFrom,
        amountTo: a.amountTo,
        createdAt: a.createdAt,
        updatedAt: a.updatedAt,
        depositReceivedAt: a.depositReceivedAt,
      };
    },
  };
}

function errorFields(text: string): { code?: string; message?: string } {
  try {
    const parsed = errorAnswer.safeParse(JSON.parse(text));
    if (parsed.success) return { code: parsed.data.error, message: parsed.data.message?.slice(0, 300) };
  } catch {
    // Not JSON (a proxy's HTML page): the status says enough.
  }
  return {};
}
