import { afterEach, describe, expect, it } from 'vitest';
import { parseJsonKeepingNumbers } from '../providers/changenow/changenow.schemas.js';
import { startFakeChangeNow, type FakeChangeNow, type FakeChangeNowOptions } from './changenow.fake.js';
import { createFakeLedger } from './changenow.fake.model.js';

// The fake at the wire: raw HTTP, raw JSON text, so what it writes is checked as ChangeNow writes it.

const OWNER = '0x52908400098527886E0F7030069857D2E4169EE7';
const HOST = '0x000000000000000000000000000000000000dEaD';
const ETH_USDT = 'fromCurrency=eth&fromNetwork=eth&toCurrency=usdt&toNetwork=eth';

let fake: FakeChangeNow | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function start(options: FakeChangeNowOptions = {}): Promise<FakeChangeNow> {
  fake = await startFakeChangeNow(options);
  return fake;
}

interface Answer {
  status: number;
  text: string;
  /** Parsed with numbers kept as their text. */
  body: Record<string, unknown>;
}

async function call(f: FakeChangeNow, method: 'GET' | 'POST', path: string, body?: string, key: string | null = f.apiKey): Promise<Answer> {
  const res = await fetch(`${f.baseUrl}${path}`, {
    method,
    headers: { ...(key === null ? {} : { 'x-changenow-api-key': key }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body,
  });
  const text = await res.text();
  return { status: res.status, text, body: parseJsonKeepingNumbers(text) as Record<string, unknown> };
}

async function quote(f: FakeChangeNow, fromAmount: string, pair = ETH_USDT): Promise<Answer> {
  return call(f, 'GET', `/exchange/estimated-amount?${pair}&fromAmount=${fromAmount}&flow=fixed-rate&useRateId=true`);
}

/** POST /exchange with fromAmount written as the given raw JSON literal. */
async function createRaw(f: FakeChangeNow, fromAmountLiteral: string, rateId: unknown, overrides: Record<string, string> = {}): Promise<Answer> {
  const rest = JSON.stringify({
    fromCurrency: 'eth',
    toCurrency: 'usdt',
    fromNetwork: 'eth',
    toNetwork: 'eth',
    toAmount: '',
    address: OWNER,
    extraId: '',
    refundAddress: HOST,
    flow: 'fixed-rate',
    type: 'direct',
    rateId,
    ...overrides,
  });
  return call(f, 'POST', '/exchange', `{"fromAmount":${fromAmountLiteral},${rest.slice(1)}`);
}

async function create(f: FakeChangeNow, fromAmount = '0.5'): Promise<string> {
  const q = await quote(f, fromAmount);
  const created = await createRaw(f, JSON.stringify(fromAmount), q.body.rateId);
  expect(created.status).toBe(200);
  return String(created.body.id);
}

const poll = async (f: FakeChangeNow, id: string): Promise<Answer> => call(f, 'GET', `/exchange/by-id?id=${id}`);
const statusOf = async (f: FakeChangeNow, id: string): Promise<unknown> => (await poll(f, id)).body.status;

describe('fake ChangeNow wire format', () => {
  it('requires the API key and records every call', async () => {
    const f = await start();
    for (const key of [null, 'wrong']) {
      const a = await call(f, 'GET', `/exchange/min-amount?${ETH_USDT}&flow=fixed-rate`, undefined, key);
      expect(a.status).toBe(401);
      expect(JSON.parse(a.text)).toEqual({ error: 'unauthorized', message: 'Unauthorized' });
    }
    expect(f.calls.map((c) => [c.method, c.path, c.endpoint])).toEqual([
      ['GET', '/v2/exchange/min-amount', 'min-amount'],
      ['GET', '/v2/exchange/min-amount', 'min-amount'],
    ]);
    expect(f.calls[0]?.at).toBeInstanceOf(Date);
    expect(f.apiKey).toMatch(/^fake-changenow-/);
  });

  it('writes amounts as JSON numbers (or strings when asked), rounding the fixed rate down to 6 decimals', async () => {
    const f = await start();
    const min = await call(f, 'GET', `/exchange/min-amount?${ETH_USDT}&flow=fixed-rate`);
    expect(min.text).toBe('{"fromCurrency":"eth","fromNetwork":"eth","toCurrency":"usdt","toNetwork":"eth","flow":"fixed-rate","minAmount":0.001}');

    const btc = await quote(f, '0.12345678', 'fromCurrency=eth&fromNetwork=eth&toCurrency=btc&toNetwork=btc');
    expect(btc.text).toContain('"fromAmount":0.12345678,"toAmount":0.006172}');
    expect(btc.body).toMatchObject({ type: 'direct', flow: 'fixed-rate', warningMessage: null, transactionSpeedForecast: '10-60' });
    expect(Date.parse(String(btc.body.validUntil))).toBeGreaterThan(Date.now());

    f.setAmountsAsStrings(true);
    expect((await quote(f, '0.5')).text).toContain('"fromAmount":"0.5","toAmount":"1500"}');
  });

  it('creates exchanges with fresh EVM pay-in addresses and 14-hex ids, keeping a numeric fromAmount exact', async () => {
    const f = await start({ rates: { 'eth->usdt': '1' } });
    const big = '123456789.123456789012345678';
    const q = await quote(f, big);
    const a = await createRaw(f, big, q.body.rateId);
    expect(a.status).toBe(200);
    expect(a.text).toContain(`"fromAmount":${big},"toAmount":123456789.123456,`);
    expect(a.body).toMatchObject({ flow: 'fixed-rate', type: 'direct', payoutAddress: OWNER, refundAddress: HOST, fromNetwork: 'eth', toNetwork: 'eth' });
    const b = await createRaw(f, '"0.5"', (await quote(f, '0.5')).body.rateId);
    for (const x of [a, b]) {
      expect(x.body.id).toMatch(/^[0-9a-f]{14}$/);
      expect(x.body.payinAddress).toMatch(/^0x[0-9a-fA-F]{40}$/);
    }
    expect(a.body.payinAddress).not.toBe(b.body.payinAddress);
    expect(f.exchangeCount()).toBe(2);
    expect(f.exchanges.get(String(a.body.id))).toMatchObject({ status: 'new', expectedAmountFrom: big, funded: false });
  });

  it('answers ChangeNow-style errors', async () => {
    const f = await start();
    const rateId = (await quote(f, '0.5')).body.rateId;
    const cases: [Promise<Answer>, number, string][] = [
      [quote(f, '0.0009'), 400, 'out_of_range'],
      [quote(f, 'abc'), 400, 'not_valid_params'],
      [quote(f, '1', 'fromCurrency=doge&fromNetwork=doge&toCurrency=usdt&toNetwork=eth'), 400, 'pair_is_inactive'],
      [call(f, 'GET', `/exchange/min-amount?${ETH_USDT}&flow=standard`), 400, 'not_valid_params'],
      [createRaw(f, '"0.5"', 'unknown'), 400, 'rate_id_not_found_or_expired'],
      [createRaw(f, '"0.5"', rateId, { address: 'not-an-address' }), 400, 'not_valid_address'],
      [createRaw(f, '"0.5"', rateId, { toCurrency: 'usdc' }), 400, 'not_valid_params'],
      [call(f, 'POST', '/exchange', '{"fromAmount":01}'), 400, 'not_valid_params'],
      [poll(f, 'ffffffffffffff'), 404, 'not_found'],
      [call(f, 'GET', '/exchange/currencies'), 404, 'not_found'],
    ];
    for (const [answer, status, error] of cases) {
      const a = await answer;
      expect([a.status, a.body.error]).toEqual([status, error]);
      expect(typeof a.body.message).toBe('string');
    }
    expect(f.exchangeCount()).toBe(0);
  });
});

describe('fake ChangeNow exchange lifecycle', () => {
  it('asks isFunded while waiting, then walks the progress path one poll at a time to finished', async () => {
    let funded = false;
    const asked: [string, string][] = [];
    const paid: string[] = [];
    const f = await start({
      progress: ['confirming', 'exchanging', 'sending'],
      isFunded: (address, amount) => {
        asked.push([address, amount]);
        return Promise.resolve(funded);
      },
      payout: (e) => {
        paid.push(`${e.id} ${e.payoutAddress} ${e.expectedAmountTo}`);
        return Promise.resolve('0xpayout');
      },
    });
    const id = await create(f, '0.25');
    const payin = f.exchanges.get(id)?.payinAddress;
    expect(await statusOf(f, id)).toBe('waiting');
    expect(await statusOf(f, id)).toBe('waiting');
    expect(f.fundedCount()).toBe(0);
    funded = true;
    const seen = [];
    for (let i = 0; i < 4; i++) seen.push((await poll(f, id)).body);
    expect(seen.map((s) => s.status)).toEqual(['confirming', 'exchanging', 'sending', 'finished']);
    expect(seen[0]).toMatchObject({ amountFrom: '0.25', amountTo: null, payoutHash: null });
    expect(seen[0]?.payinHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(seen[0]?.depositReceivedAt).toEqual(expect.any(String));
    expect(seen[3]).toMatchObject({ amountTo: '750', payoutHash: '0xpayout' });
    expect(paid).toEqual([`${id} ${OWNER} 750`]);
    expect(asked).toEqual([
      [payin, '0.25'],
      [payin, '0.25'],
      [payin, '0.25'],
    ]);
    expect(f.fundedCount()).toBe(1);
  });

  it('pays out once when polls race', async () => {
    // On the ledger itself: over HTTP the polls rarely overlap, here they surely do.
    let release: (hash: string) => void = () => {};
    let entered: () => void = () => {};
    const inPayout = new Promise<void>((resolve) => (entered = resolve));
    let payouts = 0;
    const ledger = createFakeLedger({
      progress: [],
      isFunded: () => Promise.resolve(true),
      payout: () => {
        payouts++;
        entered();
        return new Promise<string>((resolve) => (release = resolve));
      },
    });
    const pair = { fromCurrency: 'eth', fromNetwork: 'eth', toCurrency: 'usdt', toNetwork: 'eth' };
    const params: Record<string, string> = { ...pair, fromAmount: '0.5', flow: 'fixed-rate', useRateId: 'true' };
    const { quote } = ledger.estimate((name) => params[name]);
    const { id } = ledger.create({ ...pair, fromAmount: '0.5', address: OWNER, refundAddress: HOST, flow: 'fixed-rate', rateId: quote.rateId });
    const polls = Promise.all([ledger.poll(id), ledger.poll(id), ledger.poll(id)]);
    await inPayout;
    release('0xonce');
    expect((await polls).map((e) => [e.status, e.payoutHash])).toEqual([
      ['finished', '0xonce'],
      ['finished', '0xonce'],
      ['finished', '0xonce'],
    ]);
    expect(payouts).toBe(1);
  });

  it('a payout hook that throws answers 500 and leaves the exchange to the next poll', async () => {
    let attempts = 0;
    const f = await start({
      isFunded: () => Promise.resolve(true),
      payout: () => (++attempts === 1 ? Promise.reject(new Error('node down')) : Promise.resolve('0xsecond')),
    });
    const id = await create(f);
    expect(await statusOf(f, id)).toBe('confirming');
    const failed = await poll(f, id);
    expect([failed.status, failed.body.error]).toEqual([500, 'internal_error']);
    expect(f.exchanges.get(id)?.status).toBe('confirming');
    expect((await poll(f, id)).body).toMatchObject({ status: 'finished', payoutHash: '0xsecond' });
  });

  it('ends failed or refunded as set, per exchange or for the next one', async () => {
    const f = await start({ progress: [], refund: (e) => Promise.resolve(`0xrefund-${e.refundAddress}`) });
    f.setOutcome('next', 'refunded');
    const refunded = await create(f);
    const failed = await create(f);
    f.setOutcome(failed, 'failed');
    f.markFunded(refunded);
    f.markFunded(failed);
    expect((await poll(f, refunded)).body).toMatchObject({ status: 'refunded', refundHash: `0xrefund-${HOST}`, payoutHash: null, amountTo: null });
    expect((await poll(f, failed)).body).toMatchObject({ status: 'failed', refundHash: null, payoutHash: null });
    expect(() => f.setOutcome(failed, 'finished')).toThrow(/already ended/);
    expect(() => f.setOutcome('ffffffffffffff', 'finished')).toThrow(/no exchange/);
    expect(f.fundedCount()).toBe(2);
  });

  it('without isFunded an exchange waits until markFunded', async () => {
    const f = await start();
    const id = await create(f);
    expect(await statusOf(f, id)).toBe('waiting');
    expect(await statusOf(f, id)).toBe('waiting');
    f.markFunded(id);
    expect(await statusOf(f, id)).toBe('confirming');
    expect(await statusOf(f, id)).toBe('finished');
  });
});

describe('fake ChangeNow faults', () => {
  it('consumes faults per endpoint, in order', async () => {
    const f = await start();
    f.faults.failNext('min-amount', 1, '500');
    f.faults.failNext('min-amount', 2, '429');
    f.faults.failNext('by-id', 1, 'garbage');
    expect(f.faults.pending()).toBe(4);
    const min = (): Promise<Answer> => call(f, 'GET', `/exchange/min-amount?${ETH_USDT}&flow=fixed-rate`);
    expect((await quote(f, '0.5')).status).toBe(200);
    const answers = [await min(), await min(), await min(), await min()];
    expect(answers.map((a) => [a.status, a.body.error])).toEqual([
      [500, 'internal_error'],
      [429, 'too_many_requests'],
      [429, 'too_many_requests'],
      [200, undefined],
    ]);
    expect(f.faults.pending('by-id')).toBe(1);
    const garbage = await fetch(`${f.baseUrl}/exchange/by-id?id=x`, { headers: { 'x-changenow-api-key': f.apiKey } });
    expect([garbage.status, garbage.headers.get('content-type')]).toEqual([200, 'text/html']);
    f.faults.failNext('by-id', 3, 'reset');
    f.faults.clear();
    expect(f.faults.pending()).toBe(0);
    expect(() => f.faults.failNext('by-id', 1, 'after-create-timeout')).toThrow(/create-exchange only/);
  });

  it('reset destroys the connection', async () => {
    const f = await start();
    f.faults.failNext('min-amount', 1, 'reset');
    await expect(call(f, 'GET', `/exchange/min-amount?${ETH_USDT}&flow=fixed-rate`)).rejects.toThrow(/fetch failed/);
  });

  it('after-create-timeout creates the exchange and never answers; close() ends held requests', async () => {
    const f = await start();
    const rateId = (await quote(f, '0.5')).body.rateId;
    f.faults.failNext('create-exchange', 1, 'after-create-timeout');
    f.faults.failNext('by-id', 1, 'timeout');
    const held = f.faults.nextHeld();
    const create = createRaw(f, '"0.5"', rateId);
    create.catch(() => {});
    expect((await held).endpoint).toBe('create-exchange');
    expect(f.exchangeCount()).toBe(1);
    const heldPoll = f.faults.nextHeld();
    const pollAnswer = poll(f, [...f.exchanges.keys()][0] ?? '');
    pollAnswer.catch(() => {});
    expect((await heldPoll).endpoint).toBe('by-id');
    await f.close();
    await expect(create).rejects.toThrow();
    await expect(pollAnswer).rejects.toThrow();
  });

  it('holdMs drops a held request by itself', async () => {
    const f = await start({ holdMs: 20 });
    f.faults.failNext('min-amount', 1, 'timeout');
    await expect(call(f, 'GET', `/exchange/min-amount?${ETH_USDT}&flow=fixed-rate`)).rejects.toThrow(/fetch failed/);
  });

  it('logs only through the logger it is given', async () => {
    const lines: string[] = [];
    const f = await start({ log: (line) => lines.push(line) });
    await call(f, 'GET', `/exchange/min-amount?${ETH_USDT}&flow=fixed-rate`);
    expect(lines).toEqual([`fake ChangeNow: GET /v2/exchange/min-amount?${ETH_USDT}&flow=fixed-rate`]);
  });
});
