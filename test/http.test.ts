import { Writable } from 'node:stream';
import { pino } from 'pino';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { loadConfig } from '../src/config.js';
import { buildApp } from '../src/http/app.js';
import { createIpnService } from '../src/intake/ipn.service.js';
import { createOrderService } from '../src/orders/order.service.js';
import { HttpError } from '../src/http/plugins/error-handler.js';
import { loggerOptions } from '../src/logger.js';
import { startTestEngine, type TestEngine } from './support/engine.js';

let t: TestEngine;
const lines: string[] = [];
const sink = new Writable({
  write(chunk, _encoding, done) {
    lines.push(String(chunk));
    done();
  },
});

async function app() {
  const log = pino(loggerOptions('info'), sink);
  // The real services on the test database: buildApp needs no running service, only its dependencies.
  const ipn = createIpnService({ pool: t.db.pool, engine: t.engine, log });
  const orders = createOrderService({ pool: t.db.pool, nowPayments: null, statusTokenSecret: 'z'.repeat(32), publicBaseUrl: () => 'http://127.0.0.1', log });
  return buildApp({
    config: loadConfig({}),
    pool: t.db.pool,
    boss: t.boss,
    engine: t.engine,
    log,
    statusTokenSecret: 'z'.repeat(32),
    ipn,
    ipnSecret: 'x'.repeat(32),
    orders,
    extraRoutes: [async (instance) => {
      const typed = instance.withTypeProvider<ZodTypeProvider>();
      typed.post('/probe', { schema: { body: z.object({ amount: z.string().regex(/^\d+(\.\d+)?$/, 'must be a decimal string') }) } }, async () => ({ ok: true }));
      instance.get('/boom', async () => {
        throw new Error('connection string postgres://secret@db leaked?');
      });
      instance.get('/conflict', async () => {
        throw new HttpError(409, 'order already paid');
      });
      instance.get('/echo', async () => ({ ok: true }));
    }],
  });
}

beforeAll(async () => {
  t = await startTestEngine();
});
afterAll(async () => {
  await t.close();
});

describe('HTTP skeleton', () => {
  it('health: live answers, ready checks the database and pg-boss', async () => {
    const a = await app();
    expect((await a.inject({ url: '/health/live' })).json()).toEqual({ status: 'ok' });
    const ready = await a.inject({ url: '/health/ready' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ok', checks: { database: true, queue: true } });
    await a.close();
  });

  it('a 4xx explains what was wrong, naming the field', async () => {
    const a = await app();
    const bad = await a.inject({ method: 'POST', url: '/probe', payload: { amount: 1.5 } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/^body\.amount: /);
    const conflict = await a.inject({ url: '/conflict' });
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json()).toEqual({ error: 'Conflict', message: 'order already paid' });
    const missing = await a.inject({ url: '/nowhere?token=abc' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().message).toBe('No route for GET /nowhere');
    await a.close();
  });

  it('a 5xx hides its details from the caller', async () => {
    const a = await app();
    const res = await a.inject({ url: '/boom' });
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toContain('postgres://');
    expect(res.json().message).toMatch(/quote request id/);
    await a.close();
  });

  it('logs redact credentials in headers and tokens in query strings', async () => {
    const a = await app();
    lines.length = 0;
    await a.inject({ url: '/echo?order_id=o1&token=SECRET-TOKEN', headers: { authorization: 'Bearer SECRET-ADMIN', 'x-nowpayments-sig': 'SECRET-SIG' } });
    const logged = lines.join('\n');
    expect(logged).toContain('order_id=o1');
    expect(logged).not.toContain('SECRET-TOKEN');
    expect(logged).not.toContain('SECRET-ADMIN');
    expect(logged).not.toContain('SECRET-SIG');
    await a.close();
  });
});
