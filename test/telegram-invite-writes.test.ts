import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInviteActor } from '../src/actors/telegram/invite.actor.js';
import { runEffectJob } from '../src/actors/runner.js';
import { createEngine } from '../src/persistence/apply-event.js';
import { startFakeTelegram, type FakeTelegram } from '../src/sandbox/telegram.fake.js';
import { createTelegramBot } from '../src/telegram/client.js';
import { claimInvite } from '../src/telegram/invite-claim.repo.js';
import { beginLinkAttempt } from '../src/telegram/invites.repo.js';
import { subscriptionQueues } from '../src/telegram/subscriptions.service.js';
import { journalOf, startTestEngine, type TestEngine } from './support/engine.js';
import { callsTo, inviteRow, paidOrderFixture, payAndRoute, seedOrder, TOKEN } from './telegram-fixtures.js';

// What one invite costs the database: every transaction the invite actor commits and every Bot API call
// it makes, in the order they happen, through a counting wrapper around the pool (used only here). The
// shape is the at-most-once rule written out (src/actors/telegram/invite.actor.ts): the link attempt is
// committed before createChatInviteLink, the link before editChatInviteLink, "extended + send attempted"
// before sendMessage, and "sent" after it. Re-splitting a write adds a transaction and fails this test.

type Step = { tx: string[] } | { call: string };

/** The pool, counting: an autocommit query is one transaction, BEGIN…COMMIT on a client is one. */
function countingPool(pool: pg.Pool, timeline: Step[]): pg.Pool {
  const textOf = (query: unknown) => (typeof query === 'string' ? query : (query as { text: string }).text).replace(/\s+/g, ' ').trim();
  const bind = <T extends object>(target: T, prop: string | symbol) => {
    const value = Reflect.get(target, prop, target) as unknown;
    return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
  };
  const wrapClient = (client: pg.PoolClient): pg.PoolClient => {
    let open: string[] | null = null;
    return new Proxy(client, {
      get(target, prop) {
        if (prop !== 'query') return bind(target, prop);
        return async (...args: unknown[]) => {
          const text = textOf(args[0]);
          if (/^BEGIN/i.test(text)) open = [];
          const result = await (target.query as (...a: unknown[]) => Promise<unknown>)(...args);
          if (/^COMMIT/i.test(text)) {
            timeline.push({ tx: open ?? [] });
            open = null;
          } else if (/^ROLLBACK/i.test(text)) open = null;
          else if (open && !/^BEGIN/i.test(text)) open.push(text);
          else if (!open) timeline.push({ tx: [text] });
          return result;
        };
      },
    });
  };
  return new Proxy(pool, {
    get(target, prop) {
      if (prop === 'query') {
        return async (...args: unknown[]) => {
          const result = await (target.query as (...a: unknown[]) => Promise<unknown>)(...args);
          timeline.push({ tx: [textOf(args[0])] });
          return result;
        };
      }
      if (prop === 'connect') return async () => wrapClient(await target.connect());
      return bind(target, prop);
    },
  });
}

let e: TestEngine;
let tg: FakeTelegram;

beforeAll(async () => {
  e = await startTestEngine();
  for (const [name, options] of Object.entries(subscriptionQueues)) await e.boss.createQueue(name, options).catch(() => {});
  tg = await startFakeTelegram({ token: TOKEN });
});
afterAll(async () => {
  await e?.close();
  await tg?.close();
});


/** One invite, start to end, with its timeline: transactions committed and Bot API calls made. */
async function oneInvite(inviteExpireAfterMs: number, beforeJob: (paymentId: string) => Promise<void> = async () => {}) {
  const timeline: Step[] = [];
  const bot = createTelegramBot({ token: TOKEN, apiRoot: tg.apiRoot, timeoutMs: 5_000, botInfo: tg.botInfo });
  bot.api.config.use((prev, method, payload, signal) => {
    timeline.push({ call: method });
    return prev(method, payload, signal);
  });
  const pool = countingPool(e.db.pool, timeline);
  const actor = createInviteActor({
    pool,
    boss: e.boss,
    api: bot.api,
    log: e.log,
    inviteExpireAfterMs,
    leaseMs: 300_000,
    remindersMs: [],
  });
  // The engine writes through the counted pool too; it routed the payment, so (like the worker of a
  // service that took the IPN) it remembers the payment's snapshot and needs no read to apply the result.
  const engine = createEngine({ pool });
  const o = await paidOrderFixture(e.db);
  await payAndRoute(engine, o.paymentId, o);
  timeline.length = 0;
  await beforeJob(o.paymentId);
  // As a worker runs it: the runner records the result and applies it, with the invite's last fact.
  const job = { id: `job-writes-${o.orderId}`, data: { paymentId: o.paymentId, effect: 'invite' as const, attempt: 0 }, retryCount: 0, signal: new AbortController().signal };
  const applied = await runEffectJob({ pool, engine, log: e.log }, actor, job);
  expect(applied.outcome).toBe('applied');
  const result = (await journalOf(e.db, o.paymentId)).at(-1)!.event_type;
  // Statements of the subscriptions module alone (a grant's, and whatever it schedules) are not the
  // invite's bookkeeping. The first transaction's two statements carry the subscription's lock and grant
  // together with the invite's read of the payment and its claim: those count (they read payments or
  // write invites), whatever else they touch.
  const own = (statements: string[]) => statements.filter((s) => !/subscription|pgboss/i.test(s) || /\b(payments|invites)\b/i.test(s));
  const shape = timeline.map((step) => ('call' in step ? step.call : 'tx'));
  const statements = timeline.flatMap((step) => ('tx' in step ? own(step.tx) : []));
  return { o, result, timeline, shape, statements };
}

/** The statements of the first transaction committed: BEGIN and COMMIT around the two of the grant and the claim. */
const firstCommit = (timeline: Step[]) => (timeline.find((step) => 'tx' in step) as { tx: string[] }).tx;

/** The statements of the last transaction committed. */
const lastCommit = (timeline: Step[]) => (timeline.filter((step) => 'tx' in step).at(-1) as { tx: string[] }).tx;

describe('the invite bookkeeping: as few writes as at-most-once allows', () => {
  it('a short-lived link extended before it is sent: 4 transactions with the result and the transition, each write before the call it guards', async () => {
    const { o, result, shape, statements, timeline } = await oneInvite(86_400_000);
    expect(result).toBe('invite.sent');
    expect(shape).toEqual(['tx', 'createChatInviteLink', 'tx', 'editChatInviteLink', 'tx', 'sendMessage', 'tx']);
    // read the route/channel/plan + lock the subscription, grant + claim + attempt, store the link,
    // extended + send attempted, then sent + released, the result and the payment's transition with
    // its journal row in one statement
    expect(statements).toHaveLength(5);
    expect(firstCommit(timeline)).toEqual([
      expect.stringMatching(/^WITH target AS \(SELECT p\.view->'route'.* FROM payments p .*INSERT INTO subscriptions .*SELECT target\.route/),
      expect.stringMatching(/^WITH granted AS \( INSERT INTO subscription_grants .*UPDATE subscriptions s .*claimed AS \( INSERT INTO invites .*recorded AS \( INSERT INTO invite_link_attempts/),
    ]);
    const last = lastCommit(timeline);
    expect(last).toHaveLength(1);
    expect(last[0]).toMatch(/fact AS \(UPDATE invites SET sent_at = now\(\).*effect_result AS \(INSERT INTO effect_results.*UPDATE payments SET snapshot.*AND \(EXISTS \(SELECT 1 FROM effect_result\)\)/);
    const row = await inviteRow(e.db, o.orderId);
    expect(row).toMatchObject({ lease_owner: null, lease_until: null, create_attempts: 1, link_name: `${o.orderId}#1` });
    expect(row?.extended_at).toBeInstanceOf(Date);
    expect(row?.sent_at).toBeInstanceOf(Date);
    const { rows } = await e.db.pool.query('SELECT attempt, name, outcome FROM invite_link_attempts WHERE order_id = $1', [o.orderId]);
    expect(rows).toEqual([{ attempt: 1, name: `${o.orderId}#1`, outcome: 'stored' }]);
    expect(callsTo(tg, 'sendMessage', o.buyer)).toHaveLength(1);
  });

  it('INVITE_EXPIRE_AFTER within the pending lifetime: no extension; 3 transactions with the result and the transition', async () => {
    const { o, result, shape, statements, timeline } = await oneInvite(5 * 60_000);
    expect(result).toBe('invite.sent');
    expect(shape).toEqual(['tx', 'createChatInviteLink', 'tx', 'sendMessage', 'tx']);
    expect(statements).toHaveLength(4);
    expect(firstCommit(timeline)).toHaveLength(2);
    expect(callsTo(tg, 'editChatInviteLink', o.closedChannelId, false)).toHaveLength(0);
    expect(await inviteRow(e.db, o.orderId)).toMatchObject({ lease_owner: null, invite_link: expect.any(String) });
  });

  it('when that last commit fails, "sent" is committed alone first, then the result, then the transition: one DM, nothing asked twice', async () => {
    // A real fault inside Postgres: this payment's next journal insert fails, once.
    let paymentId = '';
    const { o, result, shape, timeline } = await oneInvite(86_400_000, async (id) => {
      paymentId = id;
      await e.db.pool.query(`CREATE SEQUENCE fail_once_${id}`);
      await e.db.pool.query(`CREATE FUNCTION fail_once_${id}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.payment_id = '${id}' AND nextval('fail_once_${id}') = 1 THEN RAISE EXCEPTION 'journal hiccup'; END IF; RETURN NEW; END $$`);
      await e.db.pool.query(`CREATE TRIGGER fail_once_${id} BEFORE INSERT ON payment_journal FOR EACH ROW EXECUTE FUNCTION fail_once_${id}()`);
    });
    await e.db.pool.query(`DROP TRIGGER fail_once_${paymentId} ON payment_journal; DROP FUNCTION fail_once_${paymentId}(); DROP SEQUENCE fail_once_${paymentId}`);
    expect(result).toBe('invite.sent');
    // The failed statement (fact, result and transition together) commits nothing and is not in the
    // timeline; then "sent" alone, the result alone, and the transition: the engine reads the payment
    // again (the failed write made it forget its copy) and writes it.
    expect(shape).toEqual(['tx', 'createChatInviteLink', 'tx', 'editChatInviteLink', 'tx', 'sendMessage', 'tx', 'tx', 'tx', 'tx']);
    const commits = timeline.filter((step): step is { tx: string[] } => 'tx' in step).slice(-4).map((step) => step.tx);
    expect(commits).toEqual([
      [expect.stringMatching(/^UPDATE invites SET sent_at = now\(\)/)],
      [expect.stringMatching(/INSERT INTO effect_results/)],
      [expect.stringMatching(/^SELECT snapshot, version, state FROM payments/)],
      [expect.stringMatching(/^WITH written AS \( UPDATE payments SET snapshot/)],
    ]);
    expect(await inviteRow(e.db, o.orderId)).toMatchObject({ sent_at: expect.any(Date), lease_owner: null });
    expect(callsTo(tg, 'sendMessage', o.buyer)).toHaveLength(1);
  });

  it('a link is named after its order and attempt in at most 32 characters ("ord_" goes first, then the tail)', async () => {
    const o = await paidOrderFixture(e.db);
    const orderId = `ord_${'a'.repeat(26)}bcdefghijk`; // 40 characters
    await seedOrder(e.db, { ...o, orderId });
    const claim = await claimInvite(e.db.pool, {
      orderId,
      paymentId: o.paymentId,
      chatId: o.closedChannelId,
      buyerTelegramId: o.buyer,
      owner: 'job-name#0',
      leaseMs: 60_000,
      attempt: 0,
      linkExpireDate: new Date(Date.now() + 600_000),
    });
    // A new invite: the claim recorded the first createChatInviteLink in the same statement.
    expect(claim?.linkAttempt).toMatchObject({ orderId, attempt: 1 });
    const names = [claim!.linkAttempt!.name];
    for (let n = 2; n <= 10; n++) names.push((await beginLinkAttempt(e.db.pool, { orderId, owner: 'job-name#0', expireDate: new Date(Date.now() + 600_000) })).name);
    expect(names[0]).toBe(`${'a'.repeat(26)}bcde#1`);
    expect(names[9]).toBe(`${'a'.repeat(26)}bcd#10`);
    for (const name of names) expect(name.length).toBeLessThanOrEqual(32);
    const short = `ord_x${o.orderId.slice(-6)}`;
    await seedOrder(e.db, { ...o, orderId: short });
    await claimInvite(e.db.pool, { orderId: short, paymentId: o.paymentId, chatId: o.closedChannelId, buyerTelegramId: o.buyer, owner: 'job-short#0', leaseMs: 60_000, attempt: 0, linkExpireDate: new Date() });
    expect((await beginLinkAttempt(e.db.pool, { orderId: short, owner: 'job-short#0', expireDate: new Date() })).name).toBe(`${short}#2`);
    // Every earlier pending attempt was counted lost by the next one; a stranger to the lease records nothing.
    const { rows } = await e.db.pool.query(`SELECT outcome, count(*)::int AS n FROM invite_link_attempts WHERE order_id = $1 GROUP BY outcome ORDER BY outcome`, [orderId]);
    expect(rows).toEqual([
      { outcome: 'lost', n: 9 },
      { outcome: 'pending', n: 1 },
    ]);
    await expect(beginLinkAttempt(e.db.pool, { orderId, owner: 'job-other#0', expireDate: new Date() })).rejects.toThrow(/lease no longer held/);
  });
});
