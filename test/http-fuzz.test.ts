import fc from 'fast-check';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { buildApp } from '../src/http/app.js';
import { createIpnService } from '../src/intake/ipn.service.js';
import { createLogger } from '../src/logger.js';
import { NP_STATUSES } from '../src/machines/payment.events.js';
import { createNowPaymentsClient } from '../src/nowpayments/client.js';
import { signIpn, type SignatureForm } from '../src/nowpayments/signature.js';
import { createOrderService } from '../src/orders/order.service.js';
import { signStatusToken } from '../src/orders/status-token.js';
import { startFakeNowPayments, type FakeNowPayments } from '../src/sandbox/nowpayments.fake.js';
import { startTestEngine, type TestEngine } from './support/engine.js';

// Property tests of the whole HTTP surface (buildApp with the real services on a test database, driven
// through app.inject): arbitrary JSON and strings — NUL, unpaired surrogates, deep nesting, "__proto__",
// huge numbers, numbers as strings — into every public route. Invariants:
// - no answer is a 5xx;
// - an unsigned (or wrongly signed, or tampered) IPN changes nothing: payments, journal, deliveries;
// - a signed IPN is answered 200 and its delivery is applied, duplicate or parked (never left "stored"),
//   unless it is one we refuse by design before verifying (nested deeper than 32, a "__proto__" key): 400;
// - buyer reads change nothing;
// - no secret appears in any answer.
// Seeded and reproducible: FUZZ_SEED picks the inputs, FUZZ_RUNS the total number of cases, spread over
// the properties (default 4000: about 20 s here). A long run:
//   FUZZ_RUNS=200000 npx vitest run test/http-fuzz.test.ts
// A failure prints the seed and the counterexample path to replay it (fast-check's seed/path).

const TOTAL_RUNS = Number(process.env.FUZZ_RUNS ?? 4000);
const SEED = Number(process.env.FUZZ_SEED ?? 20240917);
const runsFor = (share: number) => Math.max(20, Math.round(TOTAL_RUNS * share));
// Budget per test: generous for the default, scaled for long runs (about 40 ms a case is the slowest property).
const timeoutFor = (share: number) => Math.max(120_000, runsFor(share) * 60);
const options = (share: number) => ({ seed: SEED, numRuns: runsFor(share), endOnFailure: true });

const SECRETS = {
  ADMIN_TOKEN: 'fuzz-admin-token-8d0c5b2a9e7f41c3',
  NOWPAYMENTS_IPN_SECRET: 'fuzz-ipn-secret-3f1a7c9e5b2d',
  NOWPAYMENTS_API_KEY: 'fuzz-np-api-key-6e4d2c0b8a',
  STATUS_TOKEN_SECRET: 'fuzz-status-token-secret-0123456789abcdef',
  TELEGRAM_BOT_TOKEN: '5550001112:AAFuzzFuzzFuzzFuzzFuzzFuzzFuzzFuzz01',
};
const AUTH = { authorization: `Bearer ${SECRETS.ADMIN_TOKEN}` };
const IPN_PATH = '/webhooks/nowpayments';

let t: TestEngine;
let np: FakeNowPayments;
let app: FastifyInstance;
const channelId = '-1009000000001';
const planId = 'fuzz-month';
const orderIds = ['fuzz-order-a', 'fuzz-order-b', 'fuzz-order-c'];
const stats = { requests: 0, fiveXx: 0, secretsFound: 0, byStatus: new Map<number, number>(), deliveries: new Map<string, number>() };

beforeAll(async () => {
  t = await startTestEngine();
  np = await startFakeNowPayments({ apiKey: SECRETS.NOWPAYMENTS_API_KEY, ipnSecret: SECRETS.NOWPAYMENTS_IPN_SECRET });
  const config = loadConfig({ ...SECRETS, NODE_ENV: 'test', STATUS_RATE_LIMIT: '1000000', ORDER_RATE_LIMIT: '1000000' });
  const log = createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent', { secrets: Object.values(SECRETS) });
  const nowPayments = createNowPaymentsClient({ baseUrl: np.url, apiKey: SECRETS.NOWPAYMENTS_API_KEY });
  const orders = createOrderService({ pool: t.db.pool, nowPayments, statusTokenSecret: SECRETS.STATUS_TOKEN_SECRET, publicBaseUrl: () => 'http://127.0.0.1:1', log });
  app = await buildApp({
    config,
    pool: t.db.pool,
    boss: t.boss,
    engine: t.engine,
    log,
    statusTokenSecret: SECRETS.STATUS_TOKEN_SECRET,
    ipn: createIpnService({ pool: t.db.pool, engine: t.engine, log }),
    ipnSecret: SECRETS.NOWPAYMENTS_IPN_SECRET,
    orders,
  });
  const channel = await app.inject({
    method: 'POST',
    url: '/admin/channels',
    headers: AUTH,
    payload: {
      open_channel_id: channelId, closed_channel_id: '-1009000000002', title: 'Fuzz', wallet_address: '0x52908400098527886E0F7030069857D2E4169EE7',
      currency: 'usdt', network: 'eth', strategy: 'threshold', threshold_usd: '50', platform_fee_percent: '10',
      plans: [{ plan_id: planId, title: '1 month', price_usd: '9.99', duration_days: 30 }],
    },
  });
  expect(channel.statusCode).toBe(201);
  for (const orderId of orderIds) {
    await t.db.pool.query(`INSERT INTO orders (order_id, buyer_telegram_id, open_channel_id, plan_id, price_usd, source) VALUES ($1, 42, $2, $3, '9.99', 'api')`, [orderId, channelId, planId]);
  }
}, 120_000);

afterAll(async () => {
  if (process.env.FUZZ_REASONS) {
    const { rows } = await t.db.pool.query(`SELECT left(regexp_replace(problem, '"[^"]*"', '""', 'g'), 60) AS p, count(*) FROM ipn_deliveries WHERE status = 'parked' GROUP BY 1 ORDER BY 2 DESC LIMIT 25`);
    console.log(rows);
  }
  await app?.close();
  await np?.close();
  await t?.close();
  const statuses = [...stats.byStatus.entries()].sort(([a], [b]) => a - b).map(([s, n]) => `${s}:${n}`).join(' ');
  const deliveries = [...stats.deliveries.entries()].map(([s, n]) => `${s}:${n}`).join(' ');
  console.log(`http-fuzz seed=${SEED} requests=${stats.requests} 5xx=${stats.fiveXx} secrets=${stats.secretsFound} statuses ${statuses} | signed IPN deliveries ${deliveries}`);
});

/** Sends one request and checks what every answer must satisfy: no 5xx, no secret. */
async function send(request: InjectOptions) {
  const res = await app.inject(request);
  stats.requests++;
  stats.byStatus.set(res.statusCode, (stats.byStatus.get(res.statusCode) ?? 0) + 1);
  if (res.statusCode >= 500) stats.fiveXx++;
  const text = `${res.body}\n${JSON.stringify(res.headers)}`;
  const leaked = Object.entries(SECRETS).filter(([, value]) => text.includes(value)).map(([name]) => name);
  stats.secretsFound += leaked.length;
  expect(leaked, `secret in the answer to ${request.method ?? 'GET'} ${request.url}`).toEqual([]);
  expect(res.statusCode, `${request.method ?? 'GET'} ${String(request.url).slice(0, 200)} answered ${res.body.slice(0, 300)}`).toBeLessThan(500);
  return res;
}

async function footprint() {
  const { rows } = await t.db.pool.query<Record<string, string>>(`
    SELECT (SELECT count(*) FROM payments) AS payments, (SELECT coalesce(sum(version), 0) FROM payments) AS versions,
           (SELECT count(*) FROM payment_journal) AS journal, (SELECT count(*) FROM ipn_deliveries) AS deliveries,
           (SELECT count(*) FROM orders) AS orders`);
  return rows[0]!;
}

// ---------------------------------------------------------------------------------------------------
// Generators

/** A JSON text fragment written as is into the serialised body (numbers JS cannot print, deep nesting). */
class Raw {
  constructor(readonly text: string) {}
  toJSON() {
    return `\u0001RAW${rawTexts.push(this.text) - 1}\u0001`;
  }
}
let rawTexts: string[] = [];
function serialise(value: unknown): string {
  rawTexts = [];
  const json = JSON.stringify(value);
  return json.replace(/"\\u0001RAW(\d+)\\u0001"/g, (_m, i: string) => rawTexts[Number(i)]!);
}

const SPECIAL_STRINGS = ['\u0000', 'a\u0000b', '\udfff', '\ud800', 'x\ud800y', '\udc00\ud800', '\\u0000', '\\\\u0000', '%00', '\ud83d\ude00', '__proto__', 'constructor', 'prototype', '', ' ', '-0', '1e999', 'NaN', 'null', '０', '\u202e', '\r\n', '"', '\\'];
/** Any UTF-16 code units, NUL and unpaired surrogates included. */
const codeUnits = fc.array(fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(0, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0x2f, 0x25)), { maxLength: 24 }).map((codes) => String.fromCharCode(...codes));
const nastyString = fc.oneof(fc.constantFrom(...SPECIAL_STRINGS), fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 20 }), codeUnits, fc.string({ minLength: 150, maxLength: 3000 }));
const numberLexeme = fc.oneof(
  fc.constantFrom('1e999', '-1e999', '1e-999', '12345678901234567890123', '9007199254740993', '0.1000000000000000055511151231257827', '-0', '1E+400', '0e0', '1.5e300'),
  fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map(String),
);
const numberish = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, 1e21, 2 ** 53 + 2, 5e-324, Number.MAX_VALUE, 0.1, 0.30000000000000004),
  numberLexeme.map((text) => new Raw(text)),
);
/** The same number written as a JSON string (what NowPayments does for some fields). */
const numberAsString = fc.oneof(fc.integer({ min: 0, max: 2 ** 40 }).map(String), fc.double({ noNaN: true }).map(String), numberLexeme, fc.constantFrom('1.50', '0012', ' 12.5', '12.5 ', '1e3', '+1', '.5', '5.'));
const scalar = fc.oneof(nastyString, numberish, numberAsString, fc.boolean(), fc.constant(null));

/** Nesting written as text (deeper than JSON.stringify's own recursion could go). */
const deep = fc.tuple(fc.integer({ min: 1, max: 3000 }), fc.constantFrom('array', 'object')).map(([depth, kind]) => ({
  depth,
  raw: new Raw(kind === 'array' ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`),
}));

const json: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(nastyString, fc.constantFrom('fee', 'currency', 'x')), tie('value'), { maxKeys: 4 }),
  ),
})).value;

/** `arbitrary` once in `every` cases, else null. */
const rarely = <T>(arbitrary: fc.Arbitrary<T>, every: number) => fc.oneof({ weight: every - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary });

const withProtoKey = (target: Record<string, unknown>, key: '__proto__' | 'constructor', value: unknown) => {
  Object.defineProperty(target, key, { value, enumerable: true, configurable: true, writable: true });
  return target;
};

// Few enough payment ids that statuses for one payment meet (duplicates, late statuses, order conflicts).
const PAYMENT_POOL = Math.max(40, Math.round(runsFor(0.3) / 5));
const knownPayment = fc.integer({ min: 7_000_000_001, max: 7_000_000_000 + PAYMENT_POOL });
const paymentId = fc.oneof(
  { weight: 6, arbitrary: knownPayment },
  { weight: 3, arbitrary: knownPayment.map(String) },
  { weight: 1, arbitrary: fc.oneof(nastyString, numberish, numberAsString, fc.constant(null)) },
);
const amount = fc.oneof(fc.constantFrom(10, 10.5, 9.99, '10', '10.50', '0.30', 1e-7, '1.5E-8'), numberish, numberAsString, nastyString, fc.constant(null));

interface IpnCase {
  body: Record<string, unknown>;
  /** Refused with 400 before verification, by design: too deep, or a prototype key. */
  refused: boolean;
  form: SignatureForm;
  /** Send the same bytes twice (a NowPayments retry). */
  resend: boolean;
}

// Each field has values NowPayments sends (numbers, numbers as strings, nulls) and junk. A case is all
// plausible (mostly applied), plausible with one or two fields of junk (mostly parked), or chaos.
const validAmount = fc.oneof(fc.constantFrom(10, 10.5, 9.99, '10', '10.50', '0.30', 1e-7, '1.5E-8', null), fc.double({ min: 1e-9, max: 1e6, noNaN: true }), fc.double({ min: 1e-9, max: 1e6, noNaN: true }).map(String));
const FIELDS: Record<string, { valid: fc.Arbitrary<unknown>; junk: fc.Arbitrary<unknown> }> = {
  payment_id: { valid: fc.oneof(knownPayment, knownPayment.map(String)), junk: paymentId },
  payment_status: { valid: fc.constantFrom(...NP_STATUSES), junk: nastyString },
  order_id: { valid: fc.constantFrom(...orderIds, 'order-from-nowhere', null), junk: fc.oneof(nastyString, numberish) },
  invoice_id: { valid: fc.oneof(fc.integer({ min: 1, max: 2 ** 40 }), fc.integer({ min: 1, max: 2 ** 40 }).map(String), fc.constant(null)), junk: fc.oneof(numberAsString, nastyString) },
  parent_payment_id: { valid: fc.oneof(fc.constant(null), fc.integer({ min: 1, max: 2 ** 40 })), junk: fc.oneof(numberAsString, nastyString) },
  price_amount: { valid: validAmount, junk: amount },
  price_currency: { valid: fc.constantFrom('usd', 'eur'), junk: nastyString },
  pay_amount: { valid: validAmount, junk: amount },
  actually_paid: { valid: validAmount, junk: amount },
  pay_currency: { valid: fc.constantFrom('usdttrc20', 'btc', 'trx'), junk: nastyString },
  outcome_amount: { valid: validAmount, junk: amount },
  outcome_currency: { valid: fc.constant('usdttrc20'), junk: fc.oneof(nastyString, numberish) },
  purchase_id: { valid: fc.oneof(fc.integer({ min: 1, max: 2 ** 40 }), fc.integer({ min: 1, max: 2 ** 40 }).map(String)), junk: fc.oneof(numberAsString, nastyString) },
  updated_at: { valid: fc.oneof(fc.integer({ min: 0, max: 2 ** 45 }), fc.constant('2024-06-01T10:00:00.000Z')), junk: nastyString },
  fee: { valid: fc.constant({ currency: 'usdttrc20', depositFee: 0.1, withdrawalFee: 0, serviceFee: 0 }), junk: json },
  payment_extra_ids: { valid: fc.constantFrom(null, []), junk: json },
};
type Pick = 'valid' | 'junk' | 'absent';
const REQUIRED = new Set(['payment_id', 'payment_status']);
const picks = (weights: Record<Pick, number>, chaos = false) =>
  fc.record(
    Object.fromEntries(
      Object.keys(FIELDS).map((k) => [
        k,
        fc.oneof(...(Object.entries(weights) as Array<[Pick, number]>).filter(([pick, weight]) => weight > 0 && (chaos || pick !== 'absent' || !REQUIRED.has(k))).map(([pick, weight]) => ({ weight, arbitrary: fc.constant(pick) }))),
      ]),
    ),
  );
const fieldChoice = fc.oneof(
  { weight: 3, arbitrary: picks({ valid: 10, junk: 0, absent: 1 }) },
  { weight: 3, arbitrary: picks({ valid: 20, junk: 1, absent: 1 }) },
  { weight: 2, arbitrary: picks({ valid: 1, junk: 1, absent: 1 }, true) },
);
const ipnCase: fc.Arbitrary<IpnCase> = fieldChoice
  .chain((choice) =>
    fc.record({
      fields: fc.record(Object.fromEntries(Object.entries(choice).filter(([, pick]) => pick !== 'absent').map(([key, pick]) => [key, FIELDS[key]![pick as 'valid' | 'junk']]))),
      extra: rarely(fc.dictionary(nastyString, json, { maxKeys: 3 }), 4),
      deep: rarely(deep, 8),
      proto: rarely(fc.constantFrom('__proto__', 'constructor', 'nested __proto__'), 12),
      form: fc.constantFrom<SignatureForm>('recursive', 'recursive-ascii', 'js-sample'),
      resend: fc.boolean(),
    }),
  )
  .map(({ fields, extra, deep: nesting, proto, form, resend }) => {
    const body: Record<string, unknown> = { ...(extra ?? {}), ...fields };
    let refused = false;
    if (nesting) {
      body.nested = nesting.raw;
      refused ||= nesting.depth + 1 > 32;
    }
    if (proto === '__proto__') withProtoKey(body, '__proto__', { isAdmin: true });
    if (proto === 'constructor') withProtoKey(body, 'constructor', { prototype: { isAdmin: true } });
    if (proto === 'nested __proto__') body.fee = withProtoKey({ currency: 'usdttrc20' }, '__proto__', { polluted: 1 });
    if (proto) refused = true;
    return { body, refused, form, resend };
  });

/**
 * The oracle for "refused by design", computed from the text sent (independently of the code under test):
 * nested deeper than 32, or a "__proto__" key / a "constructor" object with a "prototype" key anywhere.
 */
function refusedByDesign(raw: string): boolean {
  const stack: Array<[unknown, number]> = [[JSON.parse(raw), 0]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth + 1 > 32) return true;
    const own = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
    if (!Array.isArray(value)) {
      if (own(value, '__proto__')) return true;
      const ctor = (value as Record<string, unknown>).constructor;
      if (own(value, 'constructor') && typeof ctor === 'object' && ctor !== null && own(ctor, 'prototype')) return true;
    }
    for (const child of Object.values(value)) stack.push([child, depth + 1]);
  }
  return false;
}

/** The text of a signed IPN, and its signature (a random one when the body has no canonical form). */
function signed(c: IpnCase): { raw: string; sig: string } {
  const raw = serialise(c.body);
  try {
    return { raw, sig: signIpn(JSON.parse(raw) as unknown, SECRETS.NOWPAYMENTS_IPN_SECRET, c.form) };
  } catch {
    return { raw, sig: 'ab'.repeat(64) };
  }
}

/** Percent-encodes any string, an unpaired surrogate as its (invalid) 3-byte UTF-8 form. */
function encodeAny(value: string): string {
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (code >= 0xd800 && code <= 0xdfff) out += `%${(0xe0 | (code >> 12)).toString(16)}%${(0x80 | ((code >> 6) & 0x3f)).toString(16)}%${(0x80 | (code & 0x3f)).toString(16)}`.toUpperCase();
    else out += encodeURIComponent(ch);
  }
  return out;
}
const urlPart = fc.oneof({ weight: 3, arbitrary: nastyString.map(encodeAny) }, { weight: 1, arbitrary: fc.constantFrom('%00', '%FF', '%ED%B0%80', '%', '%zz', 'a%2Fb', '..%2F..', '%C0%80') }, { weight: 1, arbitrary: numberAsString.map(encodeAny) });
const query = fc.dictionary(fc.constantFrom('order_id', 'token', 'state', 'stuck_for', 'limit', 'status', 'payment_id', '__proto__', 'x'), urlPart, { maxKeys: 4 }).map((q) =>
  Object.entries(q).map(([k, v]) => `${k}=${v}`).join('&'),
);

// ---------------------------------------------------------------------------------------------------

describe('HTTP fuzz (fast-check)', () => {
  it('signed IPNs: 200 and applied, duplicate or parked — or 400 only for what is refused by design', async () => {
    await fc.assert(
      fc.asyncProperty(ipnCase, async (c) => {
        const { raw, sig } = signed(c);
        expect(refusedByDesign(raw) || !c.refused).toBe(true); // the generator's own flag agrees with the oracle
        for (let attempt = 0; attempt < (c.resend ? 2 : 1); attempt++) {
          const res = await send({ method: 'POST', url: IPN_PATH, payload: raw, headers: { 'content-type': 'application/json', 'x-nowpayments-sig': sig } });
          if (refusedByDesign(raw)) {
            expect(res.statusCode, res.body).toBe(400);
            continue;
          }
          expect(res.statusCode, `${raw.slice(0, 300)} -> ${res.body}`).toBe(200);
          const answer = res.json<{ status: string; delivery_id: string }>();
          expect(['applied', 'duplicate', 'parked']).toContain(answer.status);
          const { rows } = await t.db.pool.query<{ status: string }>('SELECT status FROM ipn_deliveries WHERE id = $1', [answer.delivery_id]);
          expect(['applied', 'duplicate', 'parked'], raw.slice(0, 300)).toContain(rows[0]?.status);
          if (attempt === 0) stats.deliveries.set(rows[0]!.status, (stats.deliveries.get(rows[0]!.status) ?? 0) + 1);
        }
      }),
      options(0.3),
    );
  }, timeoutFor(0.3));

  it('unsigned, wrongly signed or tampered IPNs: 400/401 and no change to payments, journal or deliveries', async () => {
    const before = await footprint();
    await fc.assert(
      fc.asyncProperty(ipnCase, fc.constantFrom('none', 'garbage', 'wrong secret', 'tampered', 'empty', 'hex of another length'), async (c, how) => {
        const raw = serialise(c.body);
        let header: string | undefined;
        let payload = raw;
        if (how === 'garbage') header = 'zz'.repeat(64);
        if (how === 'empty') header = '';
        if (how === 'hex of another length') header = 'ab'.repeat(32);
        if (how === 'wrong secret' || how === 'tampered') {
          try {
            header = signIpn(JSON.parse(raw) as unknown, how === 'wrong secret' ? 'not-the-secret' : SECRETS.NOWPAYMENTS_IPN_SECRET, c.form);
          } catch {
            header = 'cd'.repeat(64);
          }
          if (how === 'tampered') payload = raw.replace(/^\{/, '{"tampered":true,');
        }
        const res = await send({ method: 'POST', url: IPN_PATH, payload, headers: { 'content-type': 'application/json', ...(header === undefined ? {} : { 'x-nowpayments-sig': header }) } });
        expect([400, 401]).toContain(res.statusCode);
        expect(await footprint()).toEqual(before);
      }),
      options(0.12),
    );
  }, timeoutFor(0.12));

  it('the same IPN with numbers or with strings gives the same exact facts', async () => {
    let next = 7_100_000_000;
    const decimal = fc.tuple(fc.bigInt({ min: 0n, max: 10n ** 15n - 1n }), fc.integer({ min: 0, max: 12 })).map(([digits, scale]) => {
      const s = digits.toString().padStart(scale + 1, '0');
      return scale === 0 ? s : `${s.slice(0, -scale)}.${s.slice(-scale)}`;
    });
    await fc.assert(
      fc.asyncProperty(decimal, decimal, decimal, fc.constantFrom(...NP_STATUSES), async (pay, paid, outcome, status) => {
        const facts = [];
        for (const asStrings of [false, true]) {
          const id = ++next;
          const value = (d: string) => (asStrings ? d : new Raw(d));
          const body = { payment_id: asStrings ? String(id) : id, payment_status: status, order_id: 'fuzz-order-a', pay_amount: value(pay), actually_paid: value(paid), outcome_amount: value(outcome), price_amount: value('9.99'), pay_currency: 'usdttrc20' };
          const raw = serialise(body);
          const res = await send({ method: 'POST', url: IPN_PATH, payload: raw, headers: { 'content-type': 'application/json', 'x-nowpayments-sig': signIpn(JSON.parse(raw) as unknown, SECRETS.NOWPAYMENTS_IPN_SECRET) } });
          expect(res.json<{ status: string }>().status, raw).toBe('applied');
          const { rows } = await t.db.pool.query<{ np: Record<string, unknown> }>(`SELECT snapshot -> 'context' -> 'np' AS np FROM payments WHERE payment_id = $1`, [String(id)]);
          const { payAmount, actuallyPaid, outcomeAmount, priceAmount } = rows[0]!.np;
          facts.push({ payAmount, actuallyPaid, outcomeAmount, priceAmount });
        }
        expect(facts[1]).toEqual(facts[0]);
        // JSON.parse keeps ~15-17 significant digits of a number; a string keeps them all.
        if (pay.replace(/\D/g, '').replace(/^0+/, '').length <= 15) expect(facts[0]!.payAmount).toBe(pay.includes('.') ? pay.replace(/\.?0+$/, '').replace(/^0+(?=\d)/, '') : pay.replace(/^0+(?=\d)/, ''));
      }),
      options(0.04),
    );
  }, timeoutFor(0.04 * 2));

  it('buyer routes (payment status, success and cancel pages): never 5xx, never a write', async () => {
    const before = await footprint();
    const token = signStatusToken(SECRETS.STATUS_TOKEN_SECRET, orderIds[0]!);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('/api/payment-status', '/pay/success', '/pay/cancel', '/api/payment-status/', '/api/payment-status%00'), query, fc.boolean(), async (path, q, realOrder) => {
        const url = realOrder ? `${path}?order_id=${orderIds[0]}&token=${token}&${q}` : `${path}?${q}`;
        await send({ url });
      }),
      options(0.16),
    );
    expect(await footprint()).toEqual(before);
  }, timeoutFor(0.16));

  it('orders: arbitrary bodies and ids, never 5xx', async () => {
    const id = fc.oneof(fc.constantFrom(channelId, planId, '42', '9223372036854775807', '9223372036854775808', '-9223372036854775809'), nastyString, numberish, numberAsString);
    const mostly = <T>(good: T, other: fc.Arbitrary<unknown>) => fc.oneof({ weight: 4, arbitrary: fc.constant(good) }, { weight: 1, arbitrary: other });
    const body = fc.oneof(
      { weight: 3, arbitrary: fc.record({ telegram_user_id: fc.oneof({ weight: 4, arbitrary: fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }).map(String) }, { weight: 1, arbitrary: id }), open_channel_id: mostly(channelId, id), plan_id: mostly(planId, id) }, { requiredKeys: [] }) },
      { weight: 1, arbitrary: json },
      { weight: 1, arbitrary: deep.map((d) => d.raw) },
    );
    await fc.assert(
      fc.asyncProperty(body, fc.boolean(), async (b, proto) => {
        const target = proto && typeof b === 'object' && b !== null && !Array.isArray(b) && !(b instanceof Raw) ? withProtoKey({ ...(b as object) }, '__proto__', { admin: true }) : b;
        await send({ method: 'POST', url: '/api/orders', payload: serialise(target), headers: { 'content-type': 'application/json' } });
      }),
      options(0.1),
    );
  }, timeoutFor(0.1));

  it('admin routes with the token: arbitrary paths, queries and bodies, never 5xx', async () => {
    const segment = fc.oneof(urlPart, knownPayment.map(String), fc.integer({ min: 1, max: 60 }).map(String), fc.constant(channelId));
    const duration = fc.tuple(fc.oneof(fc.integer({ min: 0, max: 100 }).map(String), fc.bigInt({ min: 0n, max: 10n ** 30n }).map(String)), fc.constantFrom('s', 'm', 'h', 'd', 'w', '')).map(([n, u]) => `${n}${u}`);
    const operatorBody = fc.oneof(
      fc.record({ type: fc.oneof(fc.constantFrom('operator.retry', 'operator.accept_underpaid', 'operator.cancel'), nastyString), by: fc.oneof(fc.constant('fuzz'), nastyString), note: fc.oneof(nastyString, fc.constant(undefined)) }, { requiredKeys: [] }),
      json,
    );
    const channelBody = fc.oneof(
      fc.record(
        {
          open_channel_id: fc.oneof(fc.constant('-1009000000777'), nastyString, numberAsString),
          closed_channel_id: fc.oneof(fc.constant('-1009000000778'), nastyString),
          title: nastyString,
          wallet_address: fc.oneof(fc.constant('0x52908400098527886E0F7030069857D2E4169EE7'), nastyString),
          currency: fc.oneof(fc.constant('usdt'), nastyString),
          network: fc.oneof(fc.constant('eth'), nastyString),
          strategy: fc.oneof(fc.constantFrom('instant', 'threshold'), nastyString),
          threshold_usd: fc.oneof(numberAsString, nastyString),
          platform_fee_percent: fc.oneof(numberAsString, nastyString),
          plans: fc.oneof(fc.array(fc.record({ plan_id: fc.oneof(fc.constant('p1'), nastyString), title: nastyString, price_usd: fc.oneof(numberAsString, numberish), duration_days: fc.oneof(numberish, numberAsString) }), { maxLength: 2 }), json),
        },
        { requiredKeys: [] },
      ),
      json,
    );
    const request: fc.Arbitrary<InjectOptions> = fc.oneof(
      fc.tuple(query, fc.option(duration)).map(([q, d]) => ({ url: `/admin/payments?${q}${d === null ? '' : `&stuck_for=${encodeAny(d)}`}` })),
      segment.map((s) => ({ url: `/admin/payments/${s}` })),
      fc.tuple(segment, operatorBody).map(([s, b]) => ({ method: 'POST' as const, url: `/admin/payments/${s}/events`, payload: serialise(b) })),
      fc.tuple(query).map(([q]) => ({ url: `/admin/ipn-deliveries?${q}` })),
      segment.map((s) => ({ url: `/admin/ipn-deliveries/${s}` })),
      segment.map((s) => ({ method: 'POST' as const, url: `/admin/ipn-deliveries/${s}/replay` })),
      fc.constantFrom({ url: '/admin/channels' }, { url: '/metrics' }, { url: '/health/ready' }, { url: '/health/live' }, { url: '/admin/machine.mmd' }, { url: '/admin/dashboard' }),
      segment.map((s) => ({ url: `/admin/channels/${s}` })),
      channelBody.map((b) => ({ method: 'POST' as const, url: '/admin/channels', payload: serialise(b) })),
      fc.tuple(segment, channelBody).map(([s, b]) => ({ method: 'PATCH' as const, url: `/admin/channels/${s}`, payload: serialise(b) })),
    );
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        await send({ ...r, headers: { ...AUTH, 'content-type': 'application/json' } });
      }),
      options(0.28),
    );
    // The OpenAPI document once (it is generated, not fuzzable).
    await send({ url: '/docs/openapi.json' });
  }, timeoutFor(0.28));

  it('totals: no 5xx and no secret in any answer', () => {
    expect(stats.fiveXx).toBe(0);
    expect(stats.secretsFound).toBe(0);
    expect(stats.requests).toBeGreaterThanOrEqual(Math.min(TOTAL_RUNS, 100));
  });
});
