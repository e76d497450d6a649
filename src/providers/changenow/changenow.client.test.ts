import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeChangeNow, type FakeChangeNow, type FakeChangeNowOptions, type FakeFault } from '../../sandbox/changenow.fake.js';
import { createChangeNowClient, type ChangeNowClient, type ChangeNowPair } from './changenow.client.js';
import { ChangeNowError, type ChangeNowErrorFields } from './changenow.errors.js';
import { parseJsonKeepingNumbers } from './changenow.schemas.js';

const ETH_USDT: ChangeNowPair = { fromCurrency: 'eth', fromNetwork: 'eth', toCurrency: 'usdt', toNetwork: 'eth' };
const ETH_ETH: ChangeNowPair = { fromCurrency: 'eth', fromNetwork: 'eth', toCurrency: 'eth', toNetwork: 'eth' };
const OWNER = '0x52908400098527886E0F7030069857D2E4169EE7';
const HOST = '0x000000000000000000000000000000000000dEaD';
const SECRET = 'sk-SECRET-0123456789abcdef';

let fake: FakeChangeNow | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function start(options: FakeChangeNowOptions = {}, timeoutMs = 2_000): Promise<{ fake: FakeChangeNow; client: ChangeNowClient }> {
  fake = await startFakeChangeNow({ apiKey: SECRET, ...options });
  return { fake, client: createChangeNowClient({ baseUrl: fake.baseUrl, apiKey: fake.apiKey, timeoutMs }) };
}

/** A fetch that answers one canned response, for shapes the fake never produces. */
function answering(status: number, body: string | null, headers: Record<string, string> = { 'content-type': 'application/json' }): typeof fetch {
  return () => Promise.resolve(new Response(body, { status, headers }));
}

function stubClient(f: typeof fetch): ChangeNowClient {
  return createChangeNowClient({ baseUrl: 'https://cn.invalid/v2', apiKey: SECRET, fetch: f });
}

async function failure(promise: Promise<unknown>): Promise<ChangeNowError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ChangeNowError);
    return error as ChangeNowError;
  }
  throw new Error('expected a ChangeNowError, the call succeeded');
}

const fields = (e: ChangeNowError): ChangeNowErrorFields => ({
  kind: e.kind,
  retryable: e.retryable,
  ...(e.status === undefined ? {} : { status: e.status }),
  ...(e.code === undefined ? {} : { code: e.code }),
});

describe('ChangeNow client against the fake', () => {
  it('estimates, creates and follows an exchange to finished once the pay-in is funded', async () => {
    const funded = new Set<string>();
    const asked: [string, string][] = [];
    let payouts = 0;
    const { fake, client } = await start({
      isFunded: (address, expected) => {
        asked.push([address, expected]);
        return Promise.resolve(funded.has(address));
      },
      payout: () => Promise.resolve(`0x${String(++payouts).padStart(64, '0')}`),
    });

    expect(await client.minAmount(ETH_USDT)).toBe('0.001');
    const estimate = await client.estimateFixedRate(ETH_USDT, '0.5');
    expect(estimate).toMatchObject({ fromAmount: '0.5', toAmount: '1500', warningMessage: null });
    expect(estimate.rateId).not.toBe('');
    expect(Date.parse(estimate.validUntil)).toBeGreaterThan(Date.now());

    const created = await client.createExchange({ pair: ETH_USDT, fromAmount: '0.5', address: OWNER, refundAddress: HOST, rateId: estimate.rateId });
    expect(created.id).toMatch(/^[0-9a-f]{14}$/);
    expect(created.payinAddress).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect(created).toMatchObject({ fromAmount: '0.5', toAmount: '1500', payoutAddress: OWNER, payinExtraId: null });

    const waiting = await client.getExchange(created.id);
    expect(waiting).toMatchObject({ status: 'waiting', payinHash: null, payoutHash: null, amountFrom: null, expectedAmountFrom: '0.5', expectedAmountTo: '1500' });

    funded.add(created.payinAddress);
    const confirming = await client.getExchange(created.id);
    expect(confirming.status).toBe('confirming');
    expect(confirming.payinHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(confirming.amountFrom).toBe('0.5');

    const finished = await client.getExchange(created.id);
    expect(finished).toMatchObject({ status: 'finished', payoutHash: `0x${'1'.padStart(64, '0')}`, amountTo: '1500', payoutAddress: OWNER, refundAddress: HOST });
    expect((await client.getExchange(created.id)).status).toBe('finished');
    expect(payouts).toBe(1);
    expect(asked).toEqual([
      [created.payinAddress, '0.5'],
      [created.payinAddress, '0.5'],
    ]);
    expect(fake.fundedCount()).toBe(1);
  });

  it('reports refunded and failed outcomes', async () => {
    const { fake, client } = await start({ isFunded: () => Promise.resolve(true), progress: [] });
    fake.setOutcome('next', 'refunded');
    fake.setOutcome('next', 'failed');
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const e = await client.estimateFixedRate(ETH_USDT, '0.01');
      ids.push((await client.createExchange({ pair: ETH_USDT, fromAmount: '0.01', address: OWNER, refundAddress: HOST, rateId: e.rateId })).id);
    }
    const refunded = await client.getExchange(ids[0] ?? '');
    expect(refunded.status).toBe('refunded');
    expect(refunded.refundHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(refunded.payoutHash).toBeNull();
    expect(await client.getExchange(ids[1] ?? '')).toMatchObject({ status: 'failed', payoutHash: null, refundHash: null });
  });

  it('sends the documented request: key in a header only, amounts as strings, fixed-rate, no redirects', async () => {
    const seen: { url: string; init: RequestInit | undefined }[] = [];
    fake = await startFakeChangeNow({ apiKey: SECRET });
    const client = createChangeNowClient({
      baseUrl: `${fake.baseUrl}/`,
      apiKey: SECRET,
      fetch: (input, init) => {
        seen.push({ url: String(input), init });
        return fetch(input, init);
      },
    });
    const e = await client.estimateFixedRate(ETH_USDT, '0.5');
    await client.createExchange({ pair: ETH_USDT, fromAmount: '0.5', address: OWNER, refundAddress: HOST, rateId: e.rateId });

    expect(seen[0]?.url).toBe(`${fake.baseUrl}/exchange/estimated-amount?fromCurrency=eth&toCurrency=usdt&fromNetwork=eth&toNetwork=eth&fromAmount=0.5&flow=fixed-rate&useRateId=true`);
    expect(seen[1]?.url).toBe(`${fake.baseUrl}/exchange`);
    for (const s of seen) {
      expect(s.url).not.toContain(SECRET);
      expect(s.init?.headers).toMatchObject({ 'x-changenow-api-key': SECRET });
      expect(s.init?.redirect).toBe('manual');
    }
    expect(JSON.parse(String(seen[1]?.init?.body))).toEqual({
      fromCurrency: 'eth',
      toCurrency: 'usdt',
      fromNetwork: 'eth',
      toNetwork: 'eth',
      fromAmount: '0.5',
      toAmount: '',
      address: OWNER,
      extraId: '',
      refundAddress: HOST,
      refundExtraId: '',
      userId: '',
      payload: '',
      contactEmail: '',
      flow: 'fixed-rate',
      type: 'direct',
      rateId: e.rateId,
    });
  });
});

describe('errors', () => {
  const cases: [FakeFault, ChangeNowErrorFields][] = [
    ['500', { kind: 'unavailable', retryable: true, status: 500, code: 'internal_error' }],
    ['429', { kind: 'unavailable', retryable: true, status: 429, code: 'too_many_requests' }],
    ['timeout', { kind: 'timeout', retryable: true }],
    ['garbage', { kind: 'bad_answer', retryable: false, status: 200 }],
  ];
  it.each(cases)('fault %s on a GET is %o', async (fault, expected) => {
    const { fake, client } = await start({}, 300);
    fake.faults.failNext('min-amount', 1, fault);
    expect(fields(await failure(client.minAmount(ETH_USDT)))).toEqual(expected);
    expect(await client.minAmount(ETH_USDT)).toBe('0.001');
  });

  it('a reset connection is unavailable and retryable', async () => {
    const { fake, client } = await start();
    fake.faults.failNext('by-id', 1, 'reset');
    const error = await failure(client.getExchange('00000000000000'));
    expect(error).toMatchObject({ kind: 'unavailable', retryable: true });
    expect(error.status).toBeUndefined();
  });

  it('a refused connection is unavailable and retryable', async () => {
    const { fake, client } = await start();
    await fake.close();
    expect(await failure(client.minAmount(ETH_USDT))).toMatchObject({ kind: 'unavailable', retryable: true, code: 'ECONNREFUSED' });
  });

  it('4xx answers are rejected and not retryable, with ChangeNow error code', async () => {
    const { fake, client } = await start();
    expect(fields(await failure(client.estimateFixedRate(ETH_USDT, '0.0001')))).toEqual({ kind: 'rejected', retryable: false, status: 400, code: 'out_of_range' });
    expect(fields(await failure(client.minAmount({ ...ETH_USDT, fromCurrency: 'doge' })))).toMatchObject({ kind: 'rejected', code: 'pair_is_inactive' });
    expect(fields(await failure(client.getExchange('ffffffffffffff')))).toEqual({ kind: 'rejected', retryable: false, status: 404, code: 'not_found' });
    const created = client.createExchange({ pair: ETH_USDT, fromAmount: '0.5', address: OWNER, refundAddress: HOST, rateId: 'nope' });
    expect(await failure(created)).toMatchObject({ kind: 'rejected', code: 'rate_id_not_found_or_expired' });
    const wrongKey = createChangeNowClient({ baseUrl: fake.baseUrl, apiKey: 'wrong' });
    expect(fields(await failure(wrongKey.minAmount(ETH_USDT)))).toEqual({ kind: 'rejected', retryable: false, status: 401, code: 'unauthorized' });
  });

  it('refuses a bad amount before sending anything', async () => {
    const { fake, client } = await start();
    for (const bad of ['0', '-1', '1e3', '0.1.2', ' 1', '', 'NaN']) {
      expect(fields(await failure(client.estimateFixedRate(ETH_USDT, bad)))).toEqual({ kind: 'rejected', retryable: false, code: 'invalid_request' });
    }
    expect(fake.calls).toHaveLength(0);
  });

  it('a create that times out after the exchange was made: timeout, retryable, sent once, orphan left unfunded', async () => {
    const { fake, client } = await start({}, 300);
    const e = await client.estimateFixedRate(ETH_USDT, '0.5');
    fake.faults.failNext('create-exchange', 1, 'after-create-timeout');
    const error = await failure(client.createExchange({ pair: ETH_USDT, fromAmount: '0.5', address: OWNER, refundAddress: HOST, rateId: e.rateId }));
    expect(fields(error)).toEqual({ kind: 'timeout', retryable: true });
    expect(fake.exchangeCount()).toBe(1);
    expect(fake.fundedCount()).toBe(0);
    expect(fake.calls.filter((c) => c.endpoint === 'create-exchange')).toHaveLength(1);
    expect([...fake.exchanges.values()][0]?.status).toBe('new');
  });

  it('a 5xx on create is unavailable and is not retried by the client', async () => {
    const { fake, client } = await start();
    const e = await client.estimateFixedRate(ETH_USDT, '0.5');
    fake.faults.failNext('create-exchange', 1, '500');
    expect(await failure(client.createExchange({ pair: ETH_USDT, fromAmount: '0.5', address: OWNER, refundAddress: HOST, rateId: e.rateId }))).toMatchObject({
      kind: 'unavailable',
      retryable: true,
    });
    expect(fake.calls.filter((c) => c.endpoint === 'create-exchange')).toHaveLength(1);
    expect(fake.exchangeCount()).toBe(0);
  });

  it('refuses an exchange that would pay out to another address', async () => {
    const body = JSON.stringify({ id: 'abcdefabcdef12', payinAddress: HOST, payoutAddress: HOST, fromAmount: 0.5, toAmount: 1500 });
    const client = stubClient(answering(200, body));
    const error = await failure(client.createExchange({ pair: ETH_USDT, fromAmount: '0.5', address: OWNER, refundAddress: HOST, rateId: 'r' }));
    expect(fields(error)).toEqual({ kind: 'bad_answer', retryable: false, code: 'payout_address_mismatch' });
  });

  it('an unknown status, a wrong shape or a redirect is a bad answer', async () => {
    const byId = (status: string): string =>
      JSON.stringify({ id: 'abcdefabcdef12', status, fromCurrency: 'eth', toCurrency: 'usdt', expectedAmountFrom: 1 });
    expect(await failure(stubClient(answering(200, byId('teleported'))).getExchange('x'))).toMatchObject({ kind: 'bad_answer', retryable: false });
    expect((await stubClient(answering(200, byId('verifying'))).getExchange('x')).status).toBe('verifying');
    expect(await failure(stubClient(answering(200, '{"min":1}')).minAmount(ETH_USDT))).toMatchObject({ kind: 'bad_answer' });
    expect(await failure(stubClient(answering(302, null, { location: 'https://elsewhere.invalid/' })).minAmount(ETH_USDT))).toMatchObject({
      kind: 'bad_answer',
      status: 302,
    });
    expect(await failure(stubClient(answering(503, '<html>down</html>', { 'content-type': 'text/html' })).minAmount(ETH_USDT))).toMatchObject({
      kind: 'unavailable',
      retryable: true,
      status: 503,
    });
  });

  it('never carries the API key, whatever went wrong', async () => {
    const errors: ChangeNowError[] = [];
    const { fake, client } = await start({}, 300);
    fake.faults.failNext('min-amount', 1, '500');
    errors.push(await failure(client.minAmount(ETH_USDT)));
    fake.faults.failNext('min-amount', 1, 'timeout');
    errors.push(await failure(client.minAmount(ETH_USDT)));
    errors.push(await failure(client.estimateFixedRate(ETH_USDT, '0.00001')));
    errors.push(await failure(createChangeNowClient({ baseUrl: fake.baseUrl, apiKey: `${SECRET}-wrong` }).minAmount(ETH_USDT)));
    // ChangeNow (or a proxy, or fetch itself) echoing the key back must not matter either.
    const echo = JSON.stringify({ error: `bad_key_${SECRET}`, message: `key ${SECRET} is not valid` });
    errors.push(await failure(stubClient(answering(400, echo)).minAmount(ETH_USDT)));
    errors.push(await failure(stubClient(answering(500, echo)).minAmount(ETH_USDT)));
    errors.push(await failure(stubClient(answering(200, JSON.stringify({ minAmount: SECRET }))).minAmount(ETH_USDT)));
    const throwing: typeof fetch = () => Promise.reject(new TypeError(`fetch failed for ${SECRET}`, { cause: new Error(`socket ${SECRET}`) }));
    errors.push(await failure(stubClient(throwing).minAmount(ETH_USDT)));

    for (const error of errors) {
      for (const text of [String(error), error.stack ?? '', JSON.stringify(error), inspect(error, { depth: 10, showHidden: true })]) {
        expect(text).not.toContain(SECRET);
      }
    }
    expect(errors.map((e) => e.kind)).toEqual(['unavailable', 'timeout', 'rejected', 'rejected', 'rejected', 'unavailable', 'bad_answer', 'unavailable']);
    expect(JSON.parse(JSON.stringify(errors[0]))).toMatchObject({ name: 'ChangeNowError', kind: 'unavailable', retryable: true, status: 500 });
  });
});

describe('amounts are exact decimal strings', () => {
  it('keeps every digit of what ChangeNow writes, as numbers or strings', async () => {
    const cases: [string, string][] = [
      ['0.30000000000000004', '0.30000000000000004'],
      ['123456789.123456789012345678', '123456789.123456789012345678'],
      ['"123456789.123456789012345678"', '123456789.123456789012345678'],
      ['1e-7', '0.0000001'],
      ['2.5E+3', '2500'],
      ['0.1', '0.1'],
      ['"0.10"', '0.1'],
      ['100', '100'],
    ];
    for (const [wire, expected] of cases) {
      expect(await stubClient(answering(200, `{"minAmount":${wire}}`)).minAmount(ETH_USDT)).toBe(expected);
    }
    for (const wire of ['-1', '"-1"', '"0x10"', '"1,5"', 'null', '"Infinity"', '""']) {
      expect(await failure(stubClient(answering(200, `{"minAmount":${wire}}`)).minAmount(ETH_USDT))).toMatchObject({ kind: 'bad_answer' });
    }
  });

  it('0.3 × 3000.1 is 900.03 and a 27-digit amount survives the round trip', async () => {
    const { fake, client } = await start({ rates: { 'eth->usdt': '3000.1' }, isFunded: () => Promise.resolve(true) });
    expect((await client.estimateFixedRate(ETH_USDT, '0.3')).toAmount).toBe('900.03');

    const big = '123456789.123456789012345678';
    for (const strings of [false, true]) {
      fake.setAmountsAsStrings(strings);
      const e = await client.estimateFixedRate(ETH_ETH, big);
      expect(e).toMatchObject({ fromAmount: big, toAmount: '123456789.123456' });
      const created = await client.createExchange({ pair: ETH_ETH, fromAmount: big, address: OWNER, refundAddress: HOST, rateId: e.rateId });
      expect(created).toMatchObject({ fromAmount: big, toAmount: '123456789.123456' });
      await client.getExchange(created.id);
      expect(await client.getExchange(created.id)).toMatchObject({ status: 'finished', amountFrom: big, expectedAmountFrom: big, amountTo: '123456789.123456' });
    }
  });

  it('parseJsonKeepingNumbers leaves strings alone and refuses malformed numbers', () => {
    expect(parseJsonKeepingNumbers('{"a":"x\\"1 2","b":[1,-2.5e3,0.1],"c":true,"d":null}')).toEqual({ a: 'x"1 2', b: ['1', '-2.5e3', '0.1'], c: true, d: null });
    for (const bad of ['01', '1.', '.5', '-', '1e', '{"a":1.2.3}']) expect(() => parseJsonKeepingNumbers(bad)).toThrow(SyntaxError);
  });
});
