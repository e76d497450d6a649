import { randomBytes } from 'node:crypto';
import { Decimal } from 'decimal.js';
import { Wallet } from 'ethers';
import { isFinalExchangeStatus, type ExchangeStatus } from '../providers/changenow/changenow.schemas.js';

// The fake ChangeNow's exchanges and rates: what it knows and how an exchange moves along. HTTP, the
// wire format and fault injection are in changenow.fake.ts.

export type FakeEndpoint = 'min-amount' | 'estimated-amount' | 'create-exchange' | 'by-id';

/**
 * '500' / '429': an error answer. 'timeout': hold the request without answering (until the client
 * gives up, holdMs passes, or close()). 'after-create-timeout' (create-exchange only): create the
 * exchange, then hold. 'reset': destroy the socket. 'garbage': 200 with an HTML body.
 */
export type FakeFault = '500' | '429' | 'timeout' | 'after-create-timeout' | 'reset' | 'garbage';

/** How a funded exchange ends. */
export type FakeOutcome = 'finished' | 'failed' | 'refunded';

/** Statuses a funded exchange may show on its way to the outcome, one per by-id poll. */
export type FakeProgressStatus = 'confirming' | 'exchanging' | 'sending' | 'verifying';

export interface FakePair {
  fromCurrency: string;
  fromNetwork: string;
  toCurrency: string;
  toNetwork: string;
}

export interface FakeExchange extends FakePair {
  id: string;
  status: ExchangeStatus;
  rateId: string;
  expectedAmountFrom: string;
  expectedAmountTo: string;
  amountFrom: string | null;
  amountTo: string | null;
  payinAddress: string;
  payoutAddress: string;
  refundAddress: string;
  payinHash: string | null;
  payoutHash: string | null;
  refundHash: string | null;
  createdAt: string;
  updatedAt: string;
  depositReceivedAt: string | null;
  outcome: FakeOutcome;
  /** isFunded answered true (or markFunded was called) at least once. */
  funded: boolean;
  /** Index into the progress path of the status shown now; meaningful once funded. */
  step: number;
}

export interface FakeRate {
  rateId: string;
  pair: FakePair;
  rate: string;
  validUntil: number;
}

// Rates per 1 unit of the from-currency. Tickers only: networks do not change a price here.
export const DEFAULT_RATES: Readonly<Record<string, string>> = {
  'eth->usdt': '3000',
  'eth->usdc': '3000',
  'eth->btc': '0.05',
  'eth->eth': '1',
};

export const DEFAULT_MIN_AMOUNTS: Readonly<Record<string, string>> = { eth: '0.001' };

// Networks whose addresses are 0x + 40 hex; anything else is not checked.
const EVM_NETWORKS = new Set(['eth', 'arbitrum', 'base', 'op', 'optimism', 'matic', 'polygon', 'bsc']);

export function isValidAddress(network: string, address: string): boolean {
  return EVM_NETWORKS.has(network) ? /^0x[0-9a-fA-F]{40}$/.test(address) : address.length > 0;
}

/** Fixed-rate payout: fromAmount × rate, rounded down to 6 decimals (the fake never over-promises). */
export function fixedToAmount(fromAmount: string, rate: string): string {
  return new Decimal(fromAmount).times(new Decimal(rate)).toDecimalPlaces(6, Decimal.ROUND_DOWN).toFixed();
}

export const isPositiveDecimal = (v: unknown): v is string => typeof v === 'string' && /^\d+(\.\d+)?$/.test(v) && /[1-9]/.test(v);

export const exchangeId = (): string => randomBytes(7).toString('hex');
export const txHash = (): string => `0x${randomBytes(32).toString('hex')}`;
export const rateId = (): string => randomBytes(16).toString('base64url');
export const evmAddress = (): string => Wallet.createRandom().address;

export interface FakeLedgerOptions {
  /** Rates per unit of the from-currency, keyed 'from->to' by ticker; merged over DEFAULT_RATES. */
  rates?: Record<string, string>;
  /** Minimum fromAmount per from-ticker; merged over DEFAULT_MIN_AMOUNTS (others: no minimum). */
  minAmounts?: Record<string, string>;
  /** Asked on each by-id poll of a new/waiting exchange. Without it, only markFunded() funds. */
  isFunded?: (payinAddress: string, expectedFromAmount: string) => Promise<boolean>;
  /** Called once when an exchange reaches 'finished'; its answer becomes payoutHash (default random). */
  payout?: (exchange: FakeExchange) => Promise<string>;
  /** Called once when an exchange reaches 'refunded'; its answer becomes refundHash (default random). */
  refund?: (exchange: FakeExchange) => Promise<string>;
  /**
   * Statuses shown after funding, one per by-id poll, before the outcome. Default ['confirming']:
   * the poll that sees funding answers 'confirming', the next one 'finished'.
   */
  progress?: readonly FakeProgressStatus[];
  /** How long a rateId is honoured. Default 10 minutes. */
  rateTtlMs?: number;
}

/** An answer ChangeNow gives as `{ error, message }` with an HTTP status. */
export class FakeApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

const now = (): string => new Date().toISOString();

export interface FakeLedger {
  exchanges: Map<string, FakeExchange>;
  minAmount(get: (name: string) => unknown): { pair: FakePair; minAmount: string };
  estimate(get: (name: string) => unknown): { pair: FakePair; fromAmount: string; toAmount: string; quote: FakeRate };
  create(body: unknown): FakeExchange;
  poll(id: string): Promise<FakeExchange>;
  setOutcome(exchangeIdOrNext: string, outcome: FakeOutcome): void;
  markFunded(exchangeId: string): void;
}

export function createFakeLedger(options: FakeLedgerOptions): FakeLedger {
  const rates = { ...DEFAULT_RATES, ...options.rates };
  const minAmounts = { ...DEFAULT_MIN_AMOUNTS, ...options.minAmounts };
  const progress = options.progress ?? ['confirming'];
  const rateTtlMs = options.rateTtlMs ?? 10 * 60_000;
  const exchanges = new Map<string, FakeExchange>();
  const quotes = new Map<string, FakeRate>();
  const nextOutcomes: FakeOutcome[] = [];
  // by-id polls of one exchange run one after another, so concurrent polls cannot pay out twice.
  const locks = new Map<string, Promise<void>>();

  function pairOf(get: (name: string) => unknown): FakePair {
    const pair: Partial<FakePair> = {};
    for (const name of ['fromCurrency', 'fromNetwork', 'toCurrency', 'toNetwork'] as const) {
      const v = get(name);
      if (typeof v !== 'string' || v === '') throw new FakeApiError(400, 'not_valid_params', `${name} is required`);
      pair[name] = v.toLowerCase();
    }
    return pair as FakePair;
  }

  function rateOf(pair: FakePair): string {
    const rate = rates[`${pair.fromCurrency}->${pair.toCurrency}`];
    if (rate === undefined) throw new FakeApiError(400, 'pair_is_inactive', `Pair ${pair.fromCurrency}/${pair.toCurrency} is inactive`);
    return rate;
  }

  function checkFixedRate(flow: unknown): void {
    if (flow !== 'fixed-rate') throw new FakeApiError(400, 'not_valid_params', 'this fake supports only flow=fixed-rate');
  }

  function checkAmount(pair: FakePair, fromAmount: unknown): string {
    if (!isPositiveDecimal(fromAmount)) throw new FakeApiError(400, 'not_valid_params', 'fromAmount must be a positive number');
    const min = minAmounts[pair.fromCurrency] ?? '0';
    if (new Decimal(fromAmount).lt(new Decimal(min))) {
      throw new FakeApiError(400, 'out_of_range', `Amount is less than minimal: ${min} ${pair.fromCurrency.toUpperCase()}`);
    }
    return fromAmount;
  }

  // `get` reads a request parameter (query string or body field).
  type Param = (name: string) => unknown;

  function minAmount(get: Param): { pair: FakePair; minAmount: string } {
    const pair = pairOf(get);
    checkFixedRate(get('flow'));
    rateOf(pair);
    return { pair, minAmount: minAmounts[pair.fromCurrency] ?? '0' };
  }

  function estimate(get: Param): { pair: FakePair; fromAmount: string; toAmount: string; quote: FakeRate } {
    const pair = pairOf(get);
    checkFixedRate(get('flow'));
    const fromAmount = checkAmount(pair, get('fromAmount'));
    const quote: FakeRate = { rateId: rateId(), pair, rate: rateOf(pair), validUntil: Date.now() + rateTtlMs };
    if (get('useRateId') === 'true') quotes.set(quote.rateId, quote);
    return { pair, fromAmount, toAmount: fixedToAmount(fromAmount, quote.rate), quote };
  }

  /** POST /exchange with its parsed body (numbers as their source text). */
  function create(body: unknown): FakeExchange {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new FakeApiError(400, 'not_valid_params', 'body must be an object');
    const b = body as Record<string, unknown>;
    const pair = pairOf((n) => b[n]);
    checkFixedRate(b.flow);
    const fromAmount = checkAmount(pair, b.fromAmount);
    const quote = typeof b.rateId === 'string' ? quotes.get(b.rateId) : undefined;
    if (quote === undefined || quote.validUntil < Date.now()) throw new FakeApiError(400, 'rate_id_not_found_or_expired', 'rateId is unknown or expired');
    if (Object.entries(pair).some(([k, v]) => quote.pair[k as keyof FakePair] !== v)) {
      throw new FakeApiError(400, 'not_valid_params', 'rateId was issued for another pair');
    }
    if (typeof b.address !== 'string' || !isValidAddress(pair.toNetwork, b.address)) throw new FakeApiError(400, 'not_valid_address', 'Invalid address');
    const refund = typeof b.refundAddress === 'string' ? b.refundAddress : '';
    if (refund !== '' && !isValidAddress(pair.fromNetwork, refund)) throw new FakeApiError(400, 'not_valid_refund_address', 'Invalid refund address');

    let id = exchangeId();
    while (exchanges.has(id)) id = exchangeId();
    const created = now();
    const exchange: FakeExchange = {
      id,
      status: 'new',
      ...pair,
      rateId: quote.rateId,
      expectedAmountFrom: fromAmount,
      expectedAmountTo: fixedToAmount(fromAmount, quote.rate),
      amountFrom: null,
      amountTo: null,
      payinAddress: evmAddress(),
      payoutAddress: b.address,
      refundAddress: refund,
      payinHash: null,
      payoutHash: null,
      refundHash: null,
      createdAt: created,
      updatedAt: created,
      depositReceivedAt: null,
      outcome: nextOutcomes.shift() ?? 'finished',
      funded: false,
      step: 0,
    };
    exchanges.set(id, exchange);
    return exchange;
  }

  const touch = (e: FakeExchange): void => {
    e.updatedAt = now();
  };

  // One by-id poll's worth of progress. Hooks run before the exchange changes, so a hook that throws
  // leaves it where it was (and the poll answers 500); the next poll tries again.
  async function advance(e: FakeExchange): Promise<void> {
    if (isFinalExchangeStatus(e.status)) return;
    if (e.status === 'new' || e.status === 'waiting') {
      if (!e.funded && (await options.isFunded?.(e.payinAddress, e.expectedAmountFrom)) !== true) {
        if (e.status === 'new') {
          e.status = 'waiting';
          touch(e);
        }
        return;
      }
      e.funded = true;
      e.payinHash ??= txHash();
      e.amountFrom = e.expectedAmountFrom;
      e.depositReceivedAt ??= now();
      e.step = 0;
      const first = progress[0];
      if (first !== undefined) {
        e.status = first;
        touch(e);
        return;
      }
    } else {
      const next = progress[e.step + 1];
      if (next !== undefined) {
        e.step += 1;
        e.status = next;
        touch(e);
        return;
      }
    }
    if (e.outcome === 'finished') {
      const hash = options.payout ? await options.payout(structuredClone(e)) : txHash();
      e.payoutHash = hash;
      e.amountTo = e.expectedAmountTo;
    } else if (e.outcome === 'refunded') {
      e.refundHash = options.refund ? await options.refund(structuredClone(e)) : txHash();
    }
    e.status = e.outcome;
    touch(e);
  }

  /** GET /exchange/by-id: moves the exchange one poll along, then it is read. */
  async function poll(id: string): Promise<FakeExchange> {
    const e = exchanges.get(id);
    if (e === undefined) throw new FakeApiError(404, 'not_found', 'Exchange not found');
    const run = (locks.get(e.id) ?? Promise.resolve()).then(() => advance(e));
    locks.set(e.id, run.catch(() => {}));
    await run;
    return e;
  }

  function find(id: string): FakeExchange {
    const e = exchanges.get(id);
    if (e === undefined) throw new Error(`fake ChangeNow: no exchange ${id}`);
    return e;
  }

  return {
    exchanges,
    minAmount,
    estimate,
    create,
    poll,
    setOutcome(ref, outcome) {
      if (ref === 'next') {
        nextOutcomes.push(outcome);
        return;
      }
      const e = find(ref);
      if (isFinalExchangeStatus(e.status)) throw new Error(`fake ChangeNow: exchange ${ref} already ended ${e.status}`);
      e.outcome = outcome;
    },
    markFunded(id) {
      find(id).funded = true;
    },
  };
}
