import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseJsonKeepingNumbers } from '../providers/changenow/changenow.schemas.js';
import {
  FakeApiError,
  createFakeLedger,
  type FakeEndpoint,
  type FakeExchange,
  type FakeFault,
  type FakeLedgerOptions,
  type FakeOutcome,
  type FakePair,
} from './changenow.fake.model.js';

export type { FakeEndpoint, FakeExchange, FakeFault, FakeOutcome, FakeProgressStatus } from './changenow.fake.model.js';

// A stand-in for api.changenow.io/v2: the four fixed-rate endpoints the payout actor uses, with the
// real wire format (amounts as JSON numbers, errors as { error, message }). Funding is not simulated
// here but asked of the caller (isFunded, e.g. a balance check on a local chain), and the payout is a
// hook, so the sandbox can make coins really move on a devnet while tests stay in memory.

export interface FakeChangeNowOptions extends FakeLedgerOptions {
  /** Default: a random key. */
  apiKey?: string;
  /** A held request ('timeout' faults) is dropped after this long; default: until the client leaves or close(). */
  holdMs?: number;
  /** Write amounts as JSON strings instead of numbers (ChangeNow does both). */
  amountsAsStrings?: boolean;
  /** One line per request; the fake is silent without it. */
  log?: (line: string) => void;
}

export interface FakeCall {
  method: string;
  /** Path without the query, e.g. /v2/exchange/by-id. */
  path: string;
  /** '?id=...' or ''. */
  query: string;
  endpoint: FakeEndpoint | null;
  at: Date;
}

export interface FakeChangeNowFaults {
  /** The next n requests to endpoint fail with kind (queued after those already set, consumed in order). */
  failNext(endpoint: FakeEndpoint, n: number, kind: FakeFault): void;
  /** Faults still queued for endpoint (all endpoints when omitted). */
  pending(endpoint?: FakeEndpoint): number;
  clear(): void;
  /** Resolves when the next request is held by a 'timeout' or 'after-create-timeout' fault. */
  nextHeld(): Promise<FakeCall>;
}

export interface FakeChangeNow {
  url: string;
  /** `${url}/v2`: what the client takes as baseUrl. */
  baseUrl: string;
  apiKey: string;
  /** Live records; tests may read them (and, knowingly, change them). */
  exchanges: ReadonlyMap<string, FakeExchange>;
  calls: FakeCall[];
  faults: FakeChangeNowFaults;
  /** How an exchange ends once funded (default 'finished'); 'next' queues one for the next exchange created. */
  setOutcome(exchangeIdOrNext: string, outcome: FakeOutcome): void;
  /** Treats the exchange as funded from its next by-id poll on, without asking isFunded. */
  markFunded(exchangeId: string): void;
  setAmountsAsStrings(on: boolean): void;
  exchangeCount(): number;
  /** Exchanges whose isFunded answered true at least once (or that were marked funded). */
  fundedCount(): number;
  /** Also ends held requests, so it never waits on them. */
  close(): Promise<void>;
}

const ROUTES: Record<string, FakeEndpoint> = {
  'GET /v2/exchange/min-amount': 'min-amount',
  'GET /v2/exchange/estimated-amount': 'estimated-amount',
  'POST /v2/exchange': 'create-exchange',
  'GET /v2/exchange/by-id': 'by-id',
};

// ---- the wire: amounts are written as JSON number literals of the exact decimal, as ChangeNow does
// (or as strings, which it also does), never through a JS number.

class WireAmount {
  constructor(readonly value: string) {}
}
type Wire = string | boolean | null | WireAmount | Wire[] | { [key: string]: Wire };

const amount = (v: string | null): WireAmount | null => (v === null ? null : new WireAmount(v));

function writeJson(value: Wire, amountsAsStrings: boolean): string {
  if (value instanceof WireAmount) return amountsAsStrings ? JSON.stringify(value.value) : value.value;
  if (Array.isArray(value)) return `[${value.map((v) => writeJson(v, amountsAsStrings)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${writeJson(v, amountsAsStrings)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const pairView = (p: FakePair): Record<string, Wire> => ({
  fromCurrency: p.fromCurrency,
  fromNetwork: p.fromNetwork,
  toCurrency: p.toCurrency,
  toNetwork: p.toNetwork,
});

const createdView = (e: FakeExchange): Wire => ({
  id: e.id,
  fromAmount: amount(e.expectedAmountFrom),
  toAmount: amount(e.expectedAmountTo),
  flow: 'fixed-rate',
  type: 'direct',
  payinAddress: e.payinAddress,
  payoutAddress: e.payoutAddress,
  payinExtraId: null,
  ...pairView(e),
  refundAddress: e.refundAddress,
  refundExtraId: null,
  payoutExtraId: null,
});

const exchangeView = (e: FakeExchange): Wire => ({
  id: e.id,
  status: e.status,
  actionsAvailable: false,
  ...pairView(e),
  flow: 'fixed-rate',
  type: 'direct',
  expectedAmountFrom: amount(e.expectedAmountFrom),
  expectedAmountTo: amount(e.expectedAmountTo),
  amountFrom: amount(e.amountFrom),
  amountTo: amount(e.amountTo),
  payinAddress: e.payinAddress,
  payoutAddress: e.payoutAddress,
  payinExtraId: null,
  payoutExtraId: null,
  refundAddress: e.refundAddress,
  refundExtraId: null,
  payinHash: e.payinHash,
  payoutHash: e.payoutHash,
  refundHash: e.refundHash,
  createdAt: e.createdAt,
  updatedAt: e.updatedAt,
  depositReceivedAt: e.depositReceivedAt,
});

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startFakeChangeNow(options: FakeChangeNowOptions = {}): Promise<FakeChangeNow> {
  const apiKey = options.apiKey ?? `fake-changenow-${randomBytes(12).toString('hex')}`;
  const ledger = createFakeLedger(options);
  let amountsAsStrings = options.amountsAsStrings ?? false;
  const calls: FakeCall[] = [];
  const faultQueues = new Map<FakeEndpoint, FakeFault[]>();
  const held = new Set<ServerResponse>();
  const heldWaiters: ((call: FakeCall) => void)[] = [];

  function send(res: ServerResponse, status: number, body: Wire, extraHeaders: Record<string, string> = {}): void {
    const text = writeJson(body, amountsAsStrings);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...extraHeaders });
    res.end(text);
  }

  function hold(res: ServerResponse, call: FakeCall): void {
    held.add(res);
    res.on('close', () => held.delete(res));
    if (options.holdMs !== undefined) {
      const timer = setTimeout(() => res.destroy(), options.holdMs);
      timer.unref();
      res.on('close', () => clearTimeout(timer));
    }
    for (const waiter of heldWaiters.splice(0)) waiter(call);
  }

  function fault(kind: FakeFault, req: IncomingMessage, res: ServerResponse, call: FakeCall): void {
    if (kind === '500') send(res, 500, { error: 'internal_error', message: 'fake ChangeNow: injected 500' });
    else if (kind === '429') send(res, 429, { error: 'too_many_requests', message: 'fake ChangeNow: injected 429' }, { 'retry-after': '1' });
    else if (kind === 'garbage') res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>502 Bad Gateway</body></html>');
    else if (kind === 'reset') req.socket.destroy();
    else hold(res, call);
  }

  async function answer(endpoint: FakeEndpoint, q: URLSearchParams, text: string): Promise<Wire> {
    const get = (name: string): unknown => q.get(name);
    switch (endpoint) {
      case 'min-amount': {
        const m = ledger.minAmount(get);
        return { ...pairView(m.pair), flow: 'fixed-rate', minAmount: amount(m.minAmount) };
      }
      case 'estimated-amount': {
        const e = ledger.estimate(get);
        return {
          ...pairView(e.pair),
          flow: 'fixed-rate',
          type: 'direct',
          rateId: e.quote.rateId,
          validUntil: new Date(e.quote.validUntil).toISOString(),
          transactionSpeedForecast: '10-60',
          warningMessage: null,
          fromAmount: amount(e.fromAmount),
          toAmount: amount(e.toAmount),
        };
      }
      case 'by-id':
        return exchangeView(await ledger.poll(q.get('id') ?? ''));
      case 'create-exchange': {
        let body: unknown;
        try {
          // Numbers kept as their source text: a fromAmount sent as a JSON number stays exact.
          body = parseJsonKeepingNumbers(text);
        } catch {
          throw new FakeApiError(400, 'not_valid_params', 'body is not JSON');
        }
        return createdView(ledger.create(body));
      }
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const endpoint = ROUTES[`${req.method ?? ''} ${url.pathname.replace(/\/+$/, '')}`] ?? null;
    const call: FakeCall = { method: req.method ?? '', path: url.pathname, query: url.search, endpoint, at: new Date() };
    calls.push(call);
    options.log?.(`fake ChangeNow: ${call.method} ${call.path}${call.query}`);
    const text = await readBody(req);
    if (req.headers['x-changenow-api-key'] !== apiKey) {
      send(res, 401, { error: 'unauthorized', message: 'Unauthorized' });
      return;
    }
    if (endpoint === null) {
      send(res, 404, { error: 'not_found', message: `Cannot ${call.method} ${call.path}` });
      return;
    }
    const injected = faultQueues.get(endpoint)?.shift();
    if (injected !== undefined && injected !== 'after-create-timeout') {
      fault(injected, req, res, call);
      return;
    }
    try {
      const wire = await answer(endpoint, url.searchParams, text);
      // The exchange exists now; the client never hears of it.
      if (injected === 'after-create-timeout') hold(res, call);
      else send(res, 200, wire);
    } catch (error) {
      if (!(error instanceof FakeApiError)) throw error;
      send(res, error.status, { error: error.code, message: error.message });
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      options.log?.(`fake ChangeNow: internal error ${String(err)}`);
      if (!res.headersSent && !res.destroyed) send(res, 500, { error: 'internal_error', message: 'fake ChangeNow: internal error' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let closing: Promise<void> | undefined;

  return {
    url,
    baseUrl: `${url}/v2`,
    apiKey,
    exchanges: ledger.exchanges,
    calls,
    faults: {
      failNext(endpoint, n, kind) {
        if (kind === 'after-create-timeout' && endpoint !== 'create-exchange') {
          throw new Error('fake ChangeNow: after-create-timeout applies to create-exchange only');
        }
        const queue = faultQueues.get(endpoint) ?? [];
        for (let i = 0; i < n; i++) queue.push(kind);
        faultQueues.set(endpoint, queue);
      },
      pending: (endpoint) =>
        endpoint === undefined ? [...faultQueues.values()].reduce((sum, q) => sum + q.length, 0) : (faultQueues.get(endpoint)?.length ?? 0),
      clear: () => faultQueues.clear(),
      nextHeld: () => new Promise<FakeCall>((resolve) => heldWaiters.push(resolve)),
    },
    setOutcome: (ref, outcome) => ledger.setOutcome(ref, outcome),
    markFunded: (id) => ledger.markFunded(id),
    setAmountsAsStrings(on) {
      amountsAsStrings = on;
    },
    exchangeCount: () => ledger.exchanges.size,
    fundedCount: () => [...ledger.exchanges.values()].filter((e) => e.funded).length,
    // Held requests would keep server.close() waiting forever: their sockets are destroyed first.
    // Idempotent, so a test may close early (to see a refused connection) and afterEach close again.
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        for (const res of held) res.destroy();
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      });
      return closing;
    },
  };
}
