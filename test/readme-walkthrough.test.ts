import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestService, type TestService } from './support/service.js';

// The README's sandbox walkthrough, exactly as printed: the curl commands are read out of README.md's
// "Sandbox" section and run by bash against the service (started as the README's `npm start` line
// starts it: sandbox providers, ADMIN_TOKEN=change-me-change-me-change-me). Only the address and the
// <order_id>/<payment_id> placeholders are filled in. A README command that stops working fails here.

const run = promisify(execFile);
const ADMIN = 'change-me-change-me-change-me';
let t: TestService;
let commands: { block: number; text: string }[] = [];

beforeAll(async () => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Sandbox'), readme.indexOf('\n## ', readme.indexOf('## Sandbox') + 5));
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  commands = blocks.flatMap((block, i) =>
    block
      .replace(/\\\n\s*/g, ' ') // continuation lines
      .replace(/'\{[^']*'/g, (json) => json.replace(/\n\s*/g, '')) // a JSON body broken over lines
      .split('\n')
      .map((line) => line.replace(/\s{2,}#.*$/, '').trim())
      .filter((line) => line.startsWith('curl '))
      .map((text) => ({ block: i, text })),
  );
  t = await startTestService({ ADMIN_TOKEN: ADMIN });
});
afterAll(async () => {
  await t?.close();
});

async function curl(command: string, fill: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  let text = command.replaceAll('localhost:3000', t.url.replace('http://', ''));
  for (const [key, value] of Object.entries(fill)) text = text.replaceAll(`<${key}>`, value);
  expect(text, 'every placeholder is filled').not.toMatch(/<[a-z_]+>/);
  const { stdout } = await run('bash', ['-c', `${text} -w '\\n%{http_code}'`]);
  const lines = stdout.trimEnd().split('\n');
  const status = Number(lines.pop());
  return { status, body: JSON.parse(lines.join('\n') || '{}') as Record<string, unknown> };
}

describe('the README sandbox walkthrough, as printed', () => {
  it('creates the channel and an order, pays it to paid, an underpayment parks, and every follow-up command answers', async () => {
    const walk = commands.filter((c) => c.block === 0);
    const watch = commands.filter((c) => c.block === 1);
    expect(walk.map((c) => c.text.match(/localhost:3000(\/[a-z/_-]+)/)?.[1])).toEqual(['/admin/channels', '/api/orders', '/sandbox/orders/', '/sandbox/orders/']);
    expect(watch).toHaveLength(4);
    const [channel, order, pay, underpay] = walk as [typeof walk[0], typeof walk[0], typeof walk[0], typeof walk[0]];

    expect((await curl(channel.text, {})).status).toBe(201);
    const ordered = await curl(order.text, {});
    expect(ordered.status).toBe(201);
    const paid = await curl(pay.text, { order_id: String(ordered.body.order_id) });
    expect(paid.status).toBe(200);
    const paymentId = String(paid.body.payment_id);

    // "or an underpayment": on an order of its own.
    const second = await curl(order.text, {});
    const short = await curl(underpay.text, { order_id: String(second.body.order_id) });
    expect(short.status).toBe(200);

    const [payment, ledger, payouts, check] = watch as [typeof watch[0], typeof watch[0], typeof watch[0], typeof watch[0]];
    await vi.waitFor(async () => expect(((await curl(payment.text, { payment_id: paymentId })).body.payment as { state: string }).state).toBe('paid'), {
      timeout: 30_000,
      interval: 250,
    });
    expect(((await curl(payment.text, { payment_id: String(short.body.payment_id) })).body.payment as { state: string }).state).toBe('underpaid');
    const entries = (await curl(ledger.text, {})).body.entries as Array<{ kind: string; paymentId: string | null }>;
    expect(entries.some((e) => e.kind === 'payment_credit' && e.paymentId === paymentId)).toBe(true);
    const listed = (await curl(payouts.text, {})).body.payouts as Array<{ txHash: string | null; status: string }>;
    expect(listed.some((p) => p.status === 'settled' && p.txHash?.startsWith('0x'))).toBe(true);
    expect((await curl(check.text, {})).body.balanced).toBe(true);
  }, 60_000);
});
