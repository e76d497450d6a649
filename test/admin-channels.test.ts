import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from './support/service.js';

const TOKEN = 'x'.repeat(32);
const WALLET = '0x52908400098527886E0F7030069857D2E4169EE7';

let t: TestService;
let seq = 0;
// Distinct ids per test, beyond 2^53 so any float on the way would change them.
const channelId = () => `-100${9_007_199_254_740 + ++seq}`;

beforeAll(async () => {
  t = await startTestService({ ADMIN_TOKEN: TOKEN }, { effects: ['route'] });
});
afterAll(async () => {
  await t.close();
});

function request(method: string, url: string, body?: unknown, token: string | null = TOKEN) {
  return t.service.app.inject({
    method: method as 'GET',
    url,
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
    ...(body === undefined ? {} : { payload: body as object }),
  });
}

function channel(overrides: Record<string, unknown> = {}) {
  return {
    open_channel_id: channelId(),
    closed_channel_id: channelId(),
    title: 'Signals',
    wallet_address: WALLET,
    currency: 'usdt',
    network: 'eth',
    strategy: 'instant',
    platform_fee_percent: '10',
    plans: [{ title: '1 month', price_usd: '9.99', duration_days: 30 }],
    ...overrides,
  };
}

describe('admin authentication', () => {
  it('refuses a request without a token with 401 and says how to authenticate', async () => {
    const res = await request('GET', '/admin/channels', undefined, null);
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(res.json().message).toMatch(/Authorization: Bearer/);
  });

  it('refuses a wrong token (same length or not) with 401, before validating the body', async () => {
    expect((await request('GET', '/admin/channels', undefined, 'y'.repeat(32))).statusCode).toBe(401);
    expect((await request('GET', '/admin/channels', undefined, 'short')).statusCode).toBe(401);
    expect((await request('POST', '/admin/channels', { nonsense: true }, 'y'.repeat(32))).statusCode).toBe(401);
  });

  it('answers 503 telling to set ADMIN_TOKEN when it is unset', async () => {
    const open = await startTestService({}, { effects: ['route'] });
    try {
      const res = await open.service.app.inject({ method: 'GET', url: '/admin/channels', headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.statusCode).toBe(503);
      expect(res.json().message).toMatch(/set ADMIN_TOKEN/);
    } finally {
      await open.close();
    }
  });
});

describe('channels', () => {
  it('creates a channel with its plans, lists it, and round-trips ids beyond 2^53 exactly', async () => {
    const body = channel({ open_channel_id: '-9007199254740993', closed_channel_id: '-9223372036854775808' });
    const created = await request('POST', '/admin/channels', body);
    expect(created.statusCode).toBe(201);
    const view = created.json();
    expect(view).toMatchObject({
      open_channel_id: '-9007199254740993',
      closed_channel_id: '-9223372036854775808',
      wallet_address: WALLET,
      strategy: 'instant',
      threshold_usd: null,
      platform_fee_percent: '10',
      plans: [{ title: '1 month', price_usd: '9.99', duration_days: 30, active: true }],
    });
    expect(view.plans[0].plan_id).toMatch(/^plan_/);
    // Stored as bigint, not rounded on the way: the database holds the exact digits.
    const { rows } = await t.db.pool.query(`SELECT open_channel_id::text AS id FROM channels WHERE open_channel_id = '-9007199254740993'::bigint`);
    expect(rows).toEqual([{ id: '-9007199254740993' }]);

    const listed = await request('GET', '/admin/channels');
    expect(listed.statusCode).toBe(200);
    expect(listed.json().channels.find((c: { open_channel_id: string }) => c.open_channel_id === '-9007199254740993')).toEqual(view);
    // The raw JSON carries strings: a client parsing it with JSON.parse keeps every digit.
    expect(listed.body).toContain('"open_channel_id":"-9007199254740993"');
  });

  it('stores an all-lowercase EVM wallet in checksum form', async () => {
    const res = await request('POST', '/admin/channels', channel({ wallet_address: WALLET.toLowerCase() }));
    expect(res.statusCode).toBe(201);
    expect(res.json().wallet_address).toBe(WALLET);
  });

  it('accepts a TRON wallet for a non-EVM network, checking only its shape', async () => {
    const ok = await request('POST', '/admin/channels', channel({ network: 'trx', wallet_address: 'TNDFkiSmBQorNFacb3735q8MnT29sn8BLn' }));
    expect(ok.statusCode).toBe(201);
    const bad = await request('POST', '/admin/channels', channel({ network: 'trx', wallet_address: 'not an address' }));
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/wallet_address/);
  });

  it('refuses a second channel with the same id with 409', async () => {
    const body = channel();
    expect((await request('POST', '/admin/channels', body)).statusCode).toBe(201);
    const again = await request('POST', '/admin/channels', { ...body, closed_channel_id: channelId() });
    expect(again.statusCode).toBe(409);
    expect(again.json().message).toMatch(/open_channel_id/);
  });

  it.each([
    ['a bad wallet', { wallet_address: '0x1234' }, 'wallet_address'],
    ['a wallet with a broken checksum', { wallet_address: '0x52908400098527886e0F7030069857D2E4169EE7' }, 'wallet_address'],
    ['threshold strategy without threshold', { strategy: 'threshold' }, 'threshold_usd'],
    ['a threshold of zero', { strategy: 'threshold', threshold_usd: '0' }, 'threshold_usd'],
    ['a float-looking channel id', { open_channel_id: '-1001234567890.0' }, 'open_channel_id'],
    ['a channel id sent as a JSON number', { open_channel_id: -1001234567890 }, 'open_channel_id'],
    ['a positive channel id', { open_channel_id: '1001234567890' }, 'open_channel_id'],
    ['a channel id beyond bigint', { closed_channel_id: '-9223372036854775809' }, 'closed_channel_id'],
    ['a negative price', { plans: [{ title: 'm', price_usd: '-5', duration_days: 30 }] }, 'plans.0.price_usd'],
    ['a price with 3 decimals', { plans: [{ title: 'm', price_usd: '9.999', duration_days: 30 }] }, 'plans.0.price_usd'],
    ['a price as a JSON number', { plans: [{ title: 'm', price_usd: 9.99, duration_days: 30 }] }, 'plans.0.price_usd'],
    ['a fee of 100 percent', { platform_fee_percent: '100' }, 'platform_fee_percent'],
    ['no plans', { plans: [] }, 'plans'],
    ['an unknown field', { threshold: '100' }, 'body'],
  ])('answers 400 naming the field for %s', async (_name, overrides, field) => {
    const res = await request('POST', '/admin/channels', channel(overrides));
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toContain(field === 'body' ? 'body' : `body.${field}:`);
  });

  it('patches settings and upserts plans: updates a listed plan, adds new ones, leaves the rest', async () => {
    const created = (await request('POST', '/admin/channels', channel({ plans: [
      { plan_id: 'month', title: '1 month', price_usd: '10', duration_days: 30 },
      { plan_id: 'year', title: '1 year', price_usd: '100', duration_days: 365 },
    ] }))).json();
    const id = created.open_channel_id;
    const res = await request('PATCH', `/admin/channels/${id}`, {
      strategy: 'threshold',
      threshold_usd: '250.5',
      platform_fee_percent: '12.5',
      plans: [
        { plan_id: 'month', price_usd: '12', active: false },
        { title: '1 week', price_usd: '3', duration_days: 7 },
        { plan_id: 'quarter', title: '3 months', price_usd: '27', duration_days: 90 },
      ],
    });
    expect(res.statusCode).toBe(200);
    const view = res.json();
    expect(view).toMatchObject({ strategy: 'threshold', threshold_usd: '250.5', platform_fee_percent: '12.5', title: 'Signals' });
    const byId = Object.fromEntries(view.plans.map((p: { plan_id: string }) => [p.plan_id, p]));
    expect(byId.month).toEqual({ plan_id: 'month', title: '1 month', price_usd: '12', duration_days: 30, active: false });
    expect(byId.year).toMatchObject({ price_usd: '100', active: true });
    expect(byId.quarter).toMatchObject({ title: '3 months', price_usd: '27', duration_days: 90 });
    expect(view.plans).toHaveLength(4);
  });

  it('checks a patch against the stored channel: threshold needs a threshold, a new network re-checks the wallet', async () => {
    const id = (await request('POST', '/admin/channels', channel({ network: 'trx', wallet_address: 'TNDFkiSmBQorNFacb3735q8MnT29sn8BLn' }))).json().open_channel_id;
    const threshold = await request('PATCH', `/admin/channels/${id}`, { strategy: 'threshold' });
    expect(threshold.statusCode).toBe(400);
    expect(threshold.json().message).toMatch(/^threshold_usd: /);
    const network = await request('PATCH', `/admin/channels/${id}`, { network: 'bsc' });
    expect(network.statusCode).toBe(400);
    expect(network.json().message).toMatch(/^wallet_address: .*EVM/);
    // Both together are fine.
    expect((await request('PATCH', `/admin/channels/${id}`, { network: 'bsc', wallet_address: WALLET })).statusCode).toBe(200);
  });

  it('refuses a new plan without its price, naming the field; a plan id of another channel is a new plan here', async () => {
    const other = (await request('POST', '/admin/channels', channel({ plans: [{ plan_id: 'theirs', title: 't', price_usd: '10', duration_days: 1 }] }))).json();
    const id = (await request('POST', '/admin/channels', channel())).json().open_channel_id;
    const res = await request('PATCH', `/admin/channels/${id}`, { plans: [{ title: 'no price', duration_days: 7 }, { plan_id: 'theirs', price_usd: '2' }] });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toContain('plans.0.price_usd: is required for a new plan');
    // Plan ids are unique per channel: "theirs" here is a new plan of this channel, so it needs its fields.
    expect(res.json().message).toContain('plans.1.title: is required for a new plan');
    // Nothing of a refused patch was written.
    expect((await request('GET', `/admin/channels/${id}`)).json().plans).toHaveLength(1);

    const added = await request('PATCH', `/admin/channels/${id}`, { plans: [{ plan_id: 'theirs', title: 'ours', price_usd: '20', duration_days: 7 }] });
    expect(added.statusCode).toBe(200);
    expect(added.json().plans.find((p: { plan_id: string }) => p.plan_id === 'theirs')).toMatchObject({ title: 'ours', price_usd: '20' });
    // The other channel's plan of the same id is untouched.
    expect((await request('GET', `/admin/channels/${other.open_channel_id}`)).json().plans).toEqual([
      { plan_id: 'theirs', title: 't', price_usd: '10', duration_days: 1, active: true },
    ]);
  });

  it('lets two channels sell a plan with the same id; within a channel the id names that channel\'s plan', async () => {
    const month = { plan_id: 'month', title: '1 month', price_usd: '9.99', duration_days: 30 };
    expect((await request('POST', '/admin/channels', channel({ plans: [month] }))).statusCode).toBe(201);
    const second = await request('POST', '/admin/channels', channel({ plans: [month] }));
    expect(second.statusCode).toBe(201);
    const id = second.json().open_channel_id;
    const again = await request('PATCH', `/admin/channels/${id}`, { plans: [{ plan_id: 'month', price_usd: '11' }] });
    expect(again.statusCode).toBe(200);
    expect(again.json().plans).toEqual([{ ...month, price_usd: '11', active: true }]);
  });

  it('answers 404 for a patch of an unknown channel and 400 for an empty patch', async () => {
    expect((await request('PATCH', '/admin/channels/-1009999999999', { title: 'x' })).statusCode).toBe(404);
    const id = (await request('POST', '/admin/channels', channel())).json().open_channel_id;
    const empty = await request('PATCH', `/admin/channels/${id}`, {});
    expect(empty.statusCode).toBe(400);
    expect(empty.json().message).toMatch(/nothing to update/);
  });

  it('publishes the admin schemas in the OpenAPI document', async () => {
    const doc = (await t.service.app.inject({ method: 'GET', url: '/docs/openapi.json' })).json();
    const post = doc.paths['/admin/channels'].post;
    expect(post.security).toEqual([{ admin: [] }]);
    const body = post.requestBody.content['application/json'].schema;
    expect(body.required).toEqual(expect.arrayContaining(['open_channel_id', 'wallet_address', 'strategy', 'plans']));
    expect(body.properties.open_channel_id.type).toBe('string');
    expect(doc.paths['/admin/channels/{open_channel_id}'].patch).toBeDefined();
    expect(doc.paths['/api/orders'].post).toBeDefined();
  });
});

describe('payout settings ChangeNow cannot serve', () => {
  it('refuses a threshold below ChangeNow\'s smallest swap, and an instant plan whose owner share is below it, naming the field', async () => {
    // The sandbox ChangeNow's smallest swap is 0.001 ETH, 3 USDT at its rate.
    const low = await request('POST', '/admin/channels', channel({ strategy: 'threshold', threshold_usd: '2' }));
    expect(low.statusCode).toBe(400);
    expect(low.json().message).toMatch(/^threshold_usd: must be at least 3 USD: ChangeNow's smallest swap/);
    const cheap = await request('POST', '/admin/channels', channel({ plans: [{ plan_id: `cheap-${Date.now()}`, title: 'cheap', price_usd: '2', duration_days: 1 }] }));
    expect(cheap.statusCode).toBe(400);
    expect(cheap.json().message).toMatch(/^plans\.0\.price_usd: the owner's share \(1\.80 USD\) is below ChangeNow's smallest swap/);
    const id = (await request('POST', '/admin/channels', channel())).json().open_channel_id;
    const patch = await request('PATCH', `/admin/channels/${id}`, { strategy: 'threshold', threshold_usd: '1' });
    expect(patch.statusCode).toBe(400);
    expect(patch.json().problems[0].field).toBe('threshold_usd');
  });

  it('refuses an Ethereum wallet given for another network, where the coins would be lost', async () => {
    const res = await request('POST', '/admin/channels', channel({ network: 'trx', wallet_address: '0x52908400098527886E0F7030069857D2E4169EE7' }));
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/wallet_address: is an EVM address, but network "trx" is not an EVM network/);
  });
});
