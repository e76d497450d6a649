import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { EffectActor } from '../src/actors/effect-actor.js';
import type { PaymentEvent } from '../src/machines/payment.events.js';
import { ChainError } from '../src/providers/chain/chain.errors.js';
import { ChangeNowError } from '../src/providers/changenow/changenow.errors.js';
import { paymentRow } from './support/engine.js';
import { notRun, seedOrder, startIntake, uniqueId, type IntakeHarness } from './support/intake.js';

// /metrics as Prometheus scrapes it: the operator gauges read from the database at scrape time
// (METRICS_CACHE_FOR=0s here, so each scrape reads), the counters the effect runner and the Telegram
// client increment, and fastify-metrics' HTTP histogram, all in one registry. Counters are process-wide,
// so the test compares before and after.

const token = 'metrics-token-'.padEnd(32, 'x');
let h: IntakeHarness;

// The route actor, as the test needs it per payment: fail once then park, fail for good, or route.
// The owner's credit stays a queued job nobody works, so a routed payment keeps both its jobs waiting.
const routeActor: EffectActor = {
  effect: 'route',
  async perform(job, context): Promise<PaymentEvent> {
    if (job.paymentId.startsWith('m-retry')) {
      if (context.retryCount === 0) throw new ChangeNowError('ChangeNow answered 503', { kind: 'unavailable', retryable: true, status: 503 });
      return { type: 'route.rejected', reason: 'no such channel' };
    }
    if (job.paymentId.startsWith('m-dead')) throw new ChainError('insufficient_funds', false, 'host wallet balance too low');
    return {
      type: 'route.done',
      route: { orderId: `o-${job.paymentId}`, channelId: '-1001', planId: 'p', buyerTelegramId: '7', strategy: 'threshold', ownerShareUsd: '9', feeUsd: '1' },
    };
  },
};

beforeAll(async () => {
  h = await startIntake({ ADMIN_TOKEN: token, METRICS_CACHE_FOR: '0s', STUCK_AFTER: '1h', STUCK_AFTER_STATES: 'needs_review=0s' }, { effects: ['route'], actors: { route: routeActor, accumulate: notRun('accumulate') } });
});
afterAll(async () => {
  await h?.close();
});

async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${h.t.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}
const value = (m: Map<string, number>, series: string) => m.get(series) ?? 0;
const finished = (paymentId: string) =>
  h.t.service.engine.applyEvent(paymentId, { type: 'np.finished', facts: { payAmount: '1', actuallyPaid: '1', orderId: `o-${paymentId}` } }, { source: 'test' });
const stateOf = async (paymentId: string) => (await paymentRow(h.t.db, paymentId))?.state;

describe('/metrics', () => {
  it('requires the admin token when one is set', async () => {
    expect((await fetch(`${h.t.url}/metrics`)).status).toBe(401);
  });

  it('payments by state and stuck by state move when a payment is parked for review; retries and provider errors count', async () => {
    const before = await scrape();
    const id = uniqueId('m-retry');
    await finished(id);
    // The route job fails once (a retryable ChangeNow error), runs again, and parks the payment.
    await vi.waitFor(async () => expect(await stateOf(id)).toBe('needs_review'), { timeout: 20_000, interval: 50 });
    const after = await scrape();
    expect(value(after, 'telepay_payments{state="needs_review"}')).toBe(value(before, 'telepay_payments{state="needs_review"}') + 1);
    expect(value(after, 'telepay_payments_stuck{state="needs_review"}')).toBe(value(before, 'telepay_payments_stuck{state="needs_review"}') + 1);
    expect(value(after, 'telepay_job_retries_total{queue="effect-route"}')).toBe(value(before, 'telepay_job_retries_total{queue="effect-route"}') + 1);
    expect(value(after, 'telepay_provider_errors_total{provider="changenow",kind="unavailable"}')).toBe(
      value(before, 'telepay_provider_errors_total{provider="changenow",kind="unavailable"}') + 1,
    );
  });

  it('a dead letter increments its counter (and the payment is parked, so stuck moves too)', async () => {
    const before = await scrape();
    const id = uniqueId('m-dead');
    await finished(id);
    await vi.waitFor(async () => expect(await stateOf(id)).toBe('needs_review'), { timeout: 20_000, interval: 50 });
    // The dead-letter worker counts once it parked the payment: wait for the counter itself.
    await vi.waitFor(
      async () => expect(value(await scrape(), 'telepay_dead_letters_total{queue="effect-route"}')).toBe(value(before, 'telepay_dead_letters_total{queue="effect-route"}') + 1),
      { timeout: 10_000, interval: 50 },
    );
    const after = await scrape();
    expect(value(after, 'telepay_payments_stuck{state="needs_review"}')).toBe(value(before, 'telepay_payments_stuck{state="needs_review"}') + 1);
    expect(value(after, 'telepay_provider_errors_total{provider="chain",kind="insufficient_funds"}')).toBe(
      value(before, 'telepay_provider_errors_total{provider="chain",kind="insufficient_funds"}') + 1,
    );
  });

  it('queue depth and oldest job age per queue: a routed payment leaves its invite job waiting (no invite worker here)', async () => {
    const before = await scrape();
    expect(before.has('telepay_queue_depth{queue="effect-invite"}')).toBe(true);
    expect(before.has('telepay_queue_oldest_job_age_seconds{queue="effects-dead-letter"}')).toBe(true);
    const id = uniqueId('m-routed');
    await finished(id);
    await vi.waitFor(async () => expect(await stateOf(id)).toBe('routed'), { timeout: 20_000, interval: 50 });
    const after = await scrape();
    expect(value(after, 'telepay_queue_depth{queue="effect-invite"}')).toBe(value(before, 'telepay_queue_depth{queue="effect-invite"}') + 1);
    expect(value(after, 'telepay_queue_depth{queue="effect-accumulate"}')).toBe(value(before, 'telepay_queue_depth{queue="effect-accumulate"}') + 1);
    expect(value(after, 'telepay_queue_oldest_job_age_seconds{queue="effect-invite"}')).toBeGreaterThanOrEqual(0);
    expect(value(after, 'telepay_payments{state="routed"}')).toBe(value(before, 'telepay_payments{state="routed"}') + 1);
    // routed has an hour before it is stuck.
    expect(value(after, 'telepay_payments_stuck{state="routed"}')).toBe(value(before, 'telepay_payments_stuck{state="routed"}'));
  });

  it('orphan invite links, as the invite actor records lost createChatInviteLink answers', async () => {
    const { orderId } = await seedOrder(h, { withInvoice: false });
    const before = await scrape();
    await h.t.db.pool.query(`INSERT INTO invites (order_id, payment_id, chat_id, buyer_telegram_id) VALUES ($1, 'p-orphan', -2001, 4242)`, [orderId]);
    await h.t.db.pool.query(
      `INSERT INTO invite_link_attempts (order_id, attempt, chat_id, name, expire_date, outcome)
       VALUES ($1, 1, -2001, 'order x #1', now() + interval '10 minutes', 'lost'), ($1, 2, -2001, 'order x #2', now() - interval '1 minute', 'lost'),
              ($1, 3, -2001, 'order x #3', now() + interval '10 minutes', 'stored')`,
      [orderId],
    );
    const after = await scrape();
    expect(value(after, 'telepay_invite_orphan_links')).toBe(value(before, 'telepay_invite_orphan_links') + 1);
    expect(value(after, 'telepay_invite_orphan_links_ever')).toBe(value(before, 'telepay_invite_orphan_links_ever') + 2);
  });

  it('a failed Telegram call is counted by kind; HTTP requests by route template; the process defaults are there', async () => {
    const before = await scrape();
    await expect(h.t.service.bot.api.sendMessage(7, ' ')).rejects.toThrow(/message text is empty/);
    await fetch(`${h.t.url}/admin/payments/some-id`, { headers: { authorization: `Bearer ${token}` } });
    const after = await scrape();
    expect(value(after, 'telepay_provider_errors_total{provider="telegram",kind="rejected"}')).toBe(value(before, 'telepay_provider_errors_total{provider="telegram",kind="rejected"}') + 1);
    const series = 'http_request_duration_seconds_count{method="GET",route="/admin/payments/:payment_id",status_code="404"}';
    expect(value(after, series)).toBe(value(before, series) + 1);
    expect(after.has('process_cpu_user_seconds_total')).toBe(true);
    // The intake counters share the registry.
    expect([...after.keys()].some((k) => k.startsWith('telepay_ipn_'))).toBe(true);
  });
});
