import type { Update } from 'grammy/types';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { renderText, storedTexts, textRuleProblem, TEXT_RULES } from '../src/channels/owner-texts.js';
import { formatDate, inviteText } from '../src/telegram/messages.js';
import { SWEEP_QUEUE } from '../src/telegram/subscriptions.service.js';
import { callsTo, ids, payAndRoute, seedOrder, startTelegramTest, waitForAccess, type TelegramTest } from './telegram-fixtures.js';

// Per-channel texts of the bot's messages: checked when saved (known keys, lengths, placeholders, no
// NUL or control characters), defaults when unset, sent as plain text (no parse_mode).

const ADMIN = 'owner-texts-admin-token-'.padEnd(32, 'x');

describe('the rules (no database)', () => {
  it('accepts known placeholders and refuses unknown ones, stray braces, missing required ones, control characters, length', () => {
    expect(textRuleProblem('plans_prompt', 'Pick a plan for {channel} 🎉')).toBeNull();
    expect(textRuleProblem('plans_prompt', 'Pick for {until}')).toMatch(/unknown placeholder \{until\}: this text may use \{channel\}/);
    expect(textRuleProblem('plans_prompt', 'Price {price}')).toMatch(/unknown placeholder \{price\}/);
    expect(textRuleProblem('plans_prompt', 'Open { brace')).toMatch(/brace/);
    expect(textRuleProblem('plans_prompt', 'Close } brace')).toMatch(/brace/);
    expect(textRuleProblem('reminder', 'Renew now!')).toMatch(/must contain \{until\}/);
    expect(textRuleProblem('reminder', 'Ends {until}.\nRenew.')).toBeNull();
    expect(textRuleProblem('expired', 'bye\u0000')).toMatch(/NUL/);
    expect(textRuleProblem('expired', 'bye\u0007')).toMatch(/control characters/);
    expect(textRuleProblem('expired', 'pay \u202Eevil')).toMatch(/bidirectional/);
    expect(textRuleProblem('invite_thanks', 'x'.repeat(501))).toMatch(/at most 500/);
    expect(textRuleProblem('invite_thanks', '   ')).toMatch(/empty/);
  });

  it('fills placeholders in one pass (a title that looks like a placeholder stays as it is) and falls back to defaults', () => {
    expect(renderText('plans_prompt', { plans_prompt: '{channel}: {channel}!' }, { channel: 'A {until} B', until: 'never' })).toBe('A {until} B: A {until} B!');
    expect(renderText('plans_prompt', null, { channel: 'Signals', until: '' })).toBe('Signals: choose a plan.');
    // Stored data that is no longer valid (written by hand, a rule tightened) is ignored, key by key.
    expect(storedTexts({ plans_prompt: 'bad {price}', reminder: 'Ends {until}', nonsense: 'x' })).toEqual({ reminder: 'Ends {until}' });
    expect(storedTexts('not an object')).toEqual({});
  });

  it('inviteText by default says exactly what the invite actor says today', () => {
    const expiresAt = new Date('2026-05-01T12:34:56.789Z');
    const channel = { title: 'Signals' };
    expect(inviteText(channel, { expiresAt })).toBe(
      `Payment received, thank you. Your access to ${channel.title} runs until ${formatDate(expiresAt)}. The button opens the channel; the link admits you once.`,
    );
    expect(inviteText({ title: 'Signals', texts: { invite_thanks: 'Welcome aboard, {channel} fan!' } }, { expiresAt })).toBe(
      'Welcome aboard, Signals fan! Your access to Signals runs until 2026-05-01 12:34 UTC. The button opens the channel; the link admits you once.',
    );
    expect(Object.keys(TEXT_RULES).sort()).toEqual(['expired', 'invite_thanks', 'plans_prompt', 'reminder']);
  });
});

describe('texts through the admin API and the bot', () => {
  let t: TelegramTest;
  let updateId = 1;
  beforeAll(async () => {
    t = await startTelegramTest({ ADMIN_TOKEN: ADMIN });
    await t.svc.service.bot.init();
  });
  afterAll(async () => {
    await t?.close();
  });

  const admin = (method: 'GET' | 'PATCH' | 'POST', url: string, payload?: object) =>
    t.svc.service.app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` }, ...(payload && { payload }) });
  /** A channel made the way an owner makes one (POST /admin/channels), with a paid-ready order. */
  async function channelWithOrder() {
    const i = ids();
    const title = `Signals ${i.openChannelId}`;
    const res = await admin('POST', '/admin/channels', {
      open_channel_id: i.openChannelId, closed_channel_id: i.closedChannelId, title, wallet_address: '0x52908400098527886E0F7030069857D2E4169EE7',
      currency: 'usdt', network: 'eth', strategy: 'instant', platform_fee_percent: '10',
      plans: [{ plan_id: i.planId, title: '1 month', price_usd: '10', duration_days: 30 }],
    });
    expect(res.statusCode).toBe(201);
    await seedOrder(t.svc.db, i);
    return { ...i, channel: { title } };
  }
  const start = async (userId: number, channel: string) => {
    await t.svc.service.bot.handleUpdate({
      update_id: updateId++,
      message: { message_id: updateId, date: 0, chat: { id: userId, type: 'private', first_name: 'B' }, from: { id: userId, is_bot: false, first_name: 'B' }, text: `/start ${channel}`, entities: [{ type: 'bot_command', offset: 0, length: 6 }] },
    } as Update);
    return callsTo(t.tg, 'sendMessage', userId).at(-1)!;
  };

  it('PATCH /admin/channels/:id stores texts, validated; GET …/texts shows them with the defaults; the bot uses them as plain text', async () => {
    const o = await channelWithOrder();
    const before = await start(9101, o.openChannelId);
    expect(before.body.text).toBe(`${o.channel.title}: choose a plan.`);

    const custom = '<b>{channel}</b>: *pick* a plan 👇 [x](https://example.com)';
    const res = await admin('PATCH', `/admin/channels/${o.openChannelId}`, { texts: { plans_prompt: custom, reminder: 'Heads up: {channel} ends {until}.' } });
    expect(res.statusCode).toBe(200);
    expect(res.json().title).toBe(o.channel.title); // other settings untouched

    const view = (await admin('GET', `/admin/channels/${o.openChannelId}/texts`)).json();
    expect(view.texts).toEqual({ plans_prompt: custom, reminder: 'Heads up: {channel} ends {until}.' });
    expect(view.effective.expired).toBe(TEXT_RULES.expired.default);

    const after = await start(9101, o.openChannelId);
    // Sent verbatim, no parse_mode: Telegram shows the characters, it formats nothing.
    expect(after.body.text).toBe(`<b>${o.channel.title}</b>: *pick* a plan 👇 [x](https://example.com)`);
    expect(after.body.parse_mode).toBeUndefined();

    // null for a key restores its default; texts: null restores them all.
    await admin('PATCH', `/admin/channels/${o.openChannelId}`, { texts: { plans_prompt: null } });
    expect((await admin('GET', `/admin/channels/${o.openChannelId}/texts`)).json().texts).toEqual({ reminder: 'Heads up: {channel} ends {until}.' });
    await admin('PATCH', `/admin/channels/${o.openChannelId}`, { texts: null });
    expect((await admin('GET', `/admin/channels/${o.openChannelId}/texts`)).json().texts).toEqual({});
    const { rows } = await t.svc.db.pool.query('SELECT texts FROM channels WHERE open_channel_id = $1', [o.openChannelId]);
    expect(rows[0].texts).toBeNull();
  });

  it('refuses unknown keys, unknown placeholders, missing {until}, NUL and overlong texts with 400 naming the field; nothing is stored', async () => {
    const o = await channelWithOrder();
    const cases: [object, RegExp][] = [
      [{ welcome: 'hi' }, /texts.*unknown text "welcome"/],
      [{ plans_prompt: 'for {price}' }, /texts\.plans_prompt: unknown placeholder \{price\}/],
      [{ reminder: 'renew!' }, /texts\.reminder: must contain \{until\}/],
      [{ expired: 'bye\u0000' }, /NUL/],
      [{ invite_thanks: 'x'.repeat(501) }, /texts\.invite_thanks: must be at most 500/],
      [{ plans_prompt: 42 }, /texts\.plans_prompt/],
    ];
    for (const [texts, message] of cases) {
      const res = await admin('PATCH', `/admin/channels/${o.openChannelId}`, { texts });
      expect(res.statusCode, JSON.stringify(texts)).toBe(400);
      expect(res.json().message).toMatch(message);
    }
    expect((await admin('GET', `/admin/channels/${o.openChannelId}/texts`)).json().texts).toEqual({});
  });

  it('reminders and the removal notice use the channel texts', async () => {
    const o = await channelWithOrder();
    await admin('PATCH', `/admin/channels/${o.openChannelId}`, {
      texts: { reminder: '⏰ {channel} ends {until}', expired: 'Goodbye from {channel}' },
    });
    await payAndRoute(t.svc.service.engine, o.paymentId, o);
    const access = await waitForAccess(t.svc.db, o.paymentId, ['invited']);
    t.tg.simulateJoin(Number(o.closedChannelId), Number(o.buyer), access.link!);
    // As if 27 of the 30 days had passed: the 3-day reminder is due; the subscription sweep sends it.
    const { rows } = await t.svc.db.pool.query<{ id: string; expires_at: Date }>(
      `UPDATE subscriptions SET expires_at = x.e, reminders_for = x.e, next_reminder_at = x.e - interval '3 days'
         FROM (SELECT date_trunc('milliseconds', now() - interval '1 second') + interval '3 days' AS e) x
        WHERE buyer_telegram_id = $1 AND open_channel_id = $2 RETURNING subscription_id::text AS id, expires_at`,
      [o.buyer, o.openChannelId],
    );
    const sub = rows[0]!;

    const jobId = await t.svc.service.boss.send(SWEEP_QUEUE, {});
    expect(jobId).toBeTruthy();
    await vi.waitFor(async () => expect((await t.svc.db.pool.query('SELECT state FROM pgboss.job WHERE id = $1', [jobId])).rows[0]?.state).toBe('completed'), {
      timeout: 15_000,
      interval: 50,
    });
    const reminder = callsTo(t.tg, 'sendMessage', o.buyer).at(-1)!;
    expect(reminder.body.text).toBe(`⏰ ${o.channel.title} ends ${formatDate(sub.expires_at)}`);
    expect(reminder.body.parse_mode).toBeUndefined();

    const revoked = await admin('POST', `/admin/channels/${o.openChannelId}/subscribers/${o.buyer}`, { action: 'revoke', by: 'owner', reason: 'test' });
    expect(revoked.statusCode).toBe(200);
    expect(callsTo(t.tg, 'sendMessage', o.buyer).at(-1)!.body.text).toBe(`Goodbye from ${o.channel.title}`);
  });
});
