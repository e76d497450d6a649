import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { ProviderUnavailableError } from '../src/domain/errors.js';
import { buildApp } from '../src/http/app.js';
import { createIpnService } from '../src/intake/ipn.service.js';
import { configSecrets, createLogger, addLogSecrets, SecretScrubber } from '../src/logger.js';
import { createNowPaymentsClient } from '../src/nowpayments/client.js';
import { createOrderService } from '../src/orders/order.service.js';
import { classifyTelegramError } from '../src/telegram/telegram-errors.js';
import { createTelegramBot } from '../src/telegram/client.js';
import { startTestEngine, type TestEngine } from './support/engine.js';

// Every configured secret, provoked into every error path these modules have, must come out of the
// logger (and out of HTTP answers) as [Redacted]: messages, stacks, causes and nested errors included.

const SECRETS = {
  TELEGRAM_BOT_TOKEN: '7412369850:AAHq3vX9-kLmN0pQrStUvWxYz_1234567890',
  TELEGRAM_WEBHOOK_SECRET: 'tg-webhook-secret-5b1f0c9e7a',
  NOWPAYMENTS_API_KEY: 'NPKEY-8QW2ZT1-MXK4P3B-JD9R6VF-A7C5E0H',
  NOWPAYMENTS_IPN_SECRET: 'ipn-secret-Zr8c1Vq0pX5mK2nB7wT4',
  CHANGENOW_API_KEY: 'cn-key-0f3e9d2c1b4a5f6e7d8c9b0a1f2e3d4c',
  ADMIN_TOKEN: 'admin-token-6c41f1d8e2b94a0fa7d3',
  STATUS_TOKEN_SECRET: 'status-token-secret-0d9c8b7a6f5e4d3c2b1a',
  HOST_WALLET_PRIVATE_KEY: '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318',
};
const config = loadConfig({ ...SECRETS, NODE_ENV: 'test' });

const lines: string[] = [];
const sink = new Writable({
  write(chunk, _encoding, done) {
    lines.push(String(chunk));
    done();
  },
});
const log = createLogger('debug', { secrets: configSecrets(config), destination: sink });

/** Every secret (and its URL-encoded / 0x-less forms) found in the text. */
function leaks(text: string): string[] {
  const found: string[] = [];
  for (const [name, value] of Object.entries(SECRETS)) {
    for (const form of new Set([value, encodeURIComponent(value), value.replace(/^0x/, ''), value.replace(/^\d+:/, '')])) {
      if (text.includes(form)) found.push(`${name} (${form === value ? 'as is' : form})`);
    }
  }
  return found;
}

let closedPort: number;
let npServer: Server;
let npUrl: string;
let t: TestEngine;

beforeAll(async () => {
  // A port that was just free and is closed again: connections are refused.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  // A NowPayments that echoes the key it was sent in its error body, as some APIs do.
  npServer = createServer((req, res) => {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ message: `Invalid api key ${String(req.headers['x-api-key'])}` }));
  });
  await new Promise<void>((resolve) => npServer.listen(0, '127.0.0.1', resolve));
  npUrl = `http://127.0.0.1:${(npServer.address() as AddressInfo).port}`;
  t = await startTestEngine();
});

afterAll(async () => {
  await new Promise<void>((resolve) => npServer.close(() => resolve()));
  await t.close();
});

describe('no secret in a log line', () => {
  it('configSecrets lists every secret of the configuration', () => {
    expect(new Set(configSecrets(config))).toEqual(new Set(Object.values(SECRETS)));
  });

  it('grammY network failure (refused connection): the token in the nested FetchError URL never reaches the log', async () => {
    const bot = createTelegramBot({ token: SECRETS.TELEGRAM_BOT_TOKEN, apiRoot: `http://127.0.0.1:${closedPort}`, timeoutMs: 2_000 });
    const before = lines.length;
    let caught: unknown;
    try {
      await bot.api.sendMessage(42, 'hello');
    } catch (error) {
      caught = error;
    }
    expect(classifyTelegramError(caught)).toMatchObject({ kind: 'unsent' }); // still a grammY HttpError, classified as before
    // The error itself no longer carries the token (message, stack, nested error).
    expect(leaks(JSON.stringify({ m: (caught as Error).message, s: (caught as Error).stack, e: String((caught as { error?: unknown }).error), es: ((caught as { error?: Error }).error)?.stack }))).toEqual([]);
    log.error({ err: caught }, 'telegram call failed');
    log.error(caught as Error);
    // An unscrubbed copy, as another library might build it: the logger still removes the token.
    const raw = new Error(`request to http://127.0.0.1:${closedPort}/bot${SECRETS.TELEGRAM_BOT_TOKEN}/sendMessage failed`, { cause: new Error(`bot${SECRETS.TELEGRAM_BOT_TOKEN}`) });
    log.warn({ err: raw, nested: { error: raw } }, `retrying https://api.telegram.org/bot${SECRETS.TELEGRAM_BOT_TOKEN}/getMe`);
    const out = lines.slice(before).join('');
    expect(out).toContain('[Redacted]');
    expect(out).toContain('ECONNREFUSED');
    expect(leaks(out)).toEqual([]);
  });

  it('NowPayments client errors: an API key echoed in an error body, and a network failure', async () => {
    const before = lines.length;
    const client = createNowPaymentsClient({ baseUrl: npUrl, apiKey: SECRETS.NOWPAYMENTS_API_KEY });
    const echoed = (await client.getPayment('1').then(() => new Error('expected a failure'), (error: unknown) => error)) as Error;
    expect(echoed.message).toContain('answered 401');
    expect(leaks(echoed.message)).toEqual([]);
    log.error({ err: echoed }, 'reconciliation look-up failed');
    const offline = createNowPaymentsClient({ baseUrl: `http://127.0.0.1:${closedPort}`, apiKey: SECRETS.NOWPAYMENTS_API_KEY });
    log.error({ err: await offline.listPaymentsByInvoice('9').catch((error: unknown) => error) }, 'invoice look-up failed');
    // Any error text quoting the key, the IPN secret, ChangeNow's key or the wallet key, in any field.
    log.error(
      { err: new Error(`x-api-key: ${SECRETS.NOWPAYMENTS_API_KEY}`, { cause: new AggregateError([new Error(SECRETS.CHANGENOW_API_KEY)], SECRETS.NOWPAYMENTS_IPN_SECRET) }), wallet: SECRETS.HOST_WALLET_PRIVATE_KEY.slice(2).toUpperCase().toLowerCase() },
      `signing with ${SECRETS.HOST_WALLET_PRIVATE_KEY} and "${SECRETS.STATUS_TOKEN_SECRET}" %s`,
      SECRETS.TELEGRAM_WEBHOOK_SECRET,
    );
    const out = lines.slice(before).join('');
    expect(out).toContain('fetch failed');
    expect(leaks(out)).toEqual([]);
  });

  it('an HTTP 500 whose error quotes the admin token, and a 502 whose message quotes a provider key: neither the log nor the answer has them', async () => {
    const ipn = createIpnService({ pool: t.db.pool, engine: t.engine, log });
    const orders = createOrderService({ pool: t.db.pool, nowPayments: null, statusTokenSecret: SECRETS.STATUS_TOKEN_SECRET, publicBaseUrl: () => 'http://127.0.0.1', log });
    const app = await buildApp({
      config,
      pool: t.db.pool,
      boss: t.boss,
      engine: t.engine,
      log,
      statusTokenSecret: SECRETS.STATUS_TOKEN_SECRET,
      ipn,
      ipnSecret: SECRETS.NOWPAYMENTS_IPN_SECRET,
      orders,
      extraRoutes: [
        async (scope) => {
          scope.get('/boom', async () => {
            throw new Error(`compared Bearer ${SECRETS.ADMIN_TOKEN} with ${SECRETS.STATUS_TOKEN_SECRET}`, { cause: new Error(SECRETS.NOWPAYMENTS_IPN_SECRET) });
          });
          scope.get('/provider', async () => {
            throw new ProviderUnavailableError('nowpayments', `NowPayments answered 401: Invalid api key ${SECRETS.NOWPAYMENTS_API_KEY}`);
          });
        },
      ],
    });
    const before = lines.length;
    const bodies: string[] = [];
    const boom = await app.inject({ url: `/boom?token=${SECRETS.STATUS_TOKEN_SECRET}`, headers: { authorization: `Bearer ${SECRETS.ADMIN_TOKEN}` } });
    expect(boom.statusCode).toBe(500);
    bodies.push(boom.body);
    const provider = await app.inject({ url: '/provider' });
    expect(provider.statusCode).toBe(502);
    expect(provider.json().message).toContain('Invalid api key [Redacted]');
    bodies.push(provider.body);
    // Admin and webhook routes with the secrets in the right and wrong places.
    for (const request of [
      { url: '/admin/payments', headers: { authorization: `Bearer ${SECRETS.ADMIN_TOKEN}` } },
      { url: '/admin/payments', headers: { authorization: `Bearer ${SECRETS.ADMIN_TOKEN}x` } },
      { url: `/admin/ipn-deliveries?payment_id=${SECRETS.NOWPAYMENTS_API_KEY}`, headers: { authorization: `Bearer ${SECRETS.ADMIN_TOKEN}` } },
      { method: 'POST' as const, url: '/webhooks/nowpayments', payload: { payment_id: 1 }, headers: { 'x-nowpayments-sig': SECRETS.NOWPAYMENTS_IPN_SECRET } },
    ]) {
      const res = await app.inject(request);
      expect(res.statusCode).toBeLessThan(500);
      bodies.push(res.body);
    }
    await app.close();
    const out = lines.slice(before).join('');
    expect(out).toContain('request failed');
    expect(leaks(out)).toEqual([]);
    expect(leaks(bodies.join('\n'))).toEqual([]);
  });

  it('secrets known only later (a generated status token secret) are added to the logger and its children', () => {
    const later = 'generated-at-start-9f8e7d6c5b4a';
    const child = log.child({ module: 'x' });
    expect(addLogSecrets(log, [later])).toBe(true);
    const before = lines.length;
    child.info(`secret ${later}`);
    expect(lines.slice(before).join('')).not.toContain(later);
    // Short values are not scrubbed (they would shred ordinary words); the configuration demands long ones.
    expect(new SecretScrubber(['short']).scrub('short')).toBe('short');
  });
});
