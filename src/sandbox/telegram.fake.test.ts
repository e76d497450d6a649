import { Bot, GrammyError, HttpError, InputFile } from 'grammy';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeTelegram, type FakeTelegram } from './telegram.fake.js';

const TOKEN = '123456:TEST-token';
const CHAT = -1001234567890;
const BUYER = 777;

let tg: FakeTelegram | undefined;

afterEach(async () => {
  await tg?.close();
  tg = undefined;
});

async function setup(hangMs?: number): Promise<{ tg: FakeTelegram; bot: Bot }> {
  tg = await startFakeTelegram({ token: TOKEN, ...(hangMs !== undefined && { hangMs }) });
  // botInfo skips getMe, so the first request a test sees is the one it made.
  const bot = new Bot(TOKEN, { client: { apiRoot: tg.apiRoot }, botInfo: tg.botInfo });
  return { tg, bot };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe('fake Telegram Bot API', () => {
  it('creates an invite link and sends it through grammY', async () => {
    const { tg, bot } = await setup();
    const expire = Math.floor(Date.now() / 1000) + 3600;
    const link = await bot.api.createChatInviteLink(CHAT, { member_limit: 1, expire_date: expire, name: 'order ord_1' });
    expect(link).toMatchObject({ creates_join_request: false, is_primary: false, is_revoked: false, member_limit: 1, expire_date: expire, name: 'order ord_1' });
    expect(link.invite_link).toMatch(/^https:\/\/t\.me\/\+[\w-]+$/);
    expect(link.creator.id).toBe(123456);

    const message = await bot.api.sendMessage(BUYER, `Your link: ${link.invite_link}`);
    expect(message).toMatchObject({ message_id: 1, chat: { id: BUYER, type: 'private' }, text: `Your link: ${link.invite_link}` });

    expect(tg.inviteLinks.get(link.invite_link)?.chatId).toBe(CHAT);
    expect(tg.calls.map((c) => c.method)).toEqual(['createChatInviteLink', 'sendMessage']);
    expect(tg.callsOf('sendMessage')[0]?.body).toMatchObject({ chat_id: BUYER });
  });

  it('answers an injected 429 as a GrammyError with retry_after, then recovers', async () => {
    const { tg, bot } = await setup();
    tg.failNext('sendMessage', { kind: '429', retryAfter: 7 });
    const err = await rejection(bot.api.sendMessage(BUYER, 'hi'));
    expect(err).toBeInstanceOf(GrammyError);
    expect((err as GrammyError).error_code).toBe(429);
    expect((err as GrammyError).parameters.retry_after).toBe(7);

    await bot.api.sendMessage(BUYER, 'hi');
    expect(tg.callsOf('sendMessage').map((c) => [c.fault?.kind, c.acted])).toEqual([['429', false], [undefined, true]]);
  });

  it('injects 403, 400 and 500, each the given number of times', async () => {
    const { tg, bot } = await setup();
    tg.failNext('sendMessage', { kind: '403' }, 2);
    tg.failNext('sendMessage', { kind: '500' });
    tg.failNext('banChatMember', { kind: '400', description: 'Bad Request: not enough rights' });
    const codes: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      codes.push(await bot.api.sendMessage(BUYER, 'x').then(() => 200, (e: GrammyError) => e.error_code));
    }
    expect(codes).toEqual([403, 403, 500, 200]);
    const err = (await rejection(bot.api.banChatMember(CHAT, BUYER))) as GrammyError;
    expect(err.description).toBe('Bad Request: not enough rights');
  });

  it('timeout-after-acting: the link exists although the client saw a network error', async () => {
    const { tg, bot } = await setup(50);
    tg.failNext('createChatInviteLink', { kind: 'timeout-after-acting' });
    const err = await rejection(bot.api.createChatInviteLink(CHAT, { member_limit: 1 }));
    expect(err).toBeInstanceOf(HttpError);
    expect(tg.inviteLinks.size).toBe(1);
    expect(tg.callsOf('createChatInviteLink')[0]).toMatchObject({ acted: true, fault: { kind: 'timeout-after-acting' } });
  });

  it('timeout-before-acting: nothing happened, and grammY can give up on its own timer', async () => {
    const { tg } = await setup(Infinity);
    const impatient = new Bot(TOKEN, { client: { apiRoot: tg.apiRoot, timeoutSeconds: 0.1 }, botInfo: tg.botInfo });
    tg.failNext('createChatInviteLink', { kind: 'timeout-before-acting' });
    const err = await rejection(impatient.api.createChatInviteLink(CHAT, {}));
    expect(err).toBeInstanceOf(HttpError);
    expect(tg.inviteLinks.size).toBe(0);
    expect(tg.callsOf('createChatInviteLink')[0]).toMatchObject({ acted: false });
  });

  it('models joins, member_limit, revocation and the only_if_banned rule', async () => {
    const { tg, bot } = await setup();
    const link = await bot.api.createChatInviteLink(CHAT, { member_limit: 1 });
    const update = tg.simulateJoin(CHAT, BUYER, link.invite_link);
    expect(update.chat_member).toMatchObject({
      chat: { id: CHAT },
      new_chat_member: { status: 'member', user: { id: BUYER } },
      invite_link: { invite_link: link.invite_link },
    });
    expect(() => tg.simulateJoin(CHAT, 778, link)).toThrow(/member limit/);

    const status = () => (tg.banned.get(CHAT)?.has(BUYER) ? 'kicked' : tg.members.get(CHAT)?.has(BUYER) ? 'member' : 'left');
    // only_if_banned on a current member: nothing happens.
    await bot.api.unbanChatMember(CHAT, BUYER, { only_if_banned: true });
    expect(status()).toBe('member');
    // Without it, unban removes a current member.
    await bot.api.unbanChatMember(CHAT, BUYER);
    expect(status()).toBe('left');

    // The documented way to remove: ban, then unban only if banned.
    tg.simulateJoin(CHAT, BUYER, link);
    await bot.api.banChatMember(CHAT, BUYER);
    expect(status()).toBe('kicked');
    await bot.api.unbanChatMember(CHAT, BUYER, { only_if_banned: true });
    expect(status()).toBe('left');

    const revoked = await bot.api.revokeChatInviteLink(CHAT, link.invite_link);
    expect(revoked.is_revoked).toBe(true);
    expect(() => tg.simulateJoin(CHAT, BUYER, link)).toThrow(/revoked/);
  });

  it('queues updates for getUpdates, confirms by offset and wakes a long poll', async () => {
    const { tg, bot } = await setup();
    const from = { id: BUYER, is_bot: false as const, first_name: 'B' };
    const first = tg.pushUpdate({ message: { message_id: 1, date: 0, from, chat: { id: BUYER, type: 'private', first_name: 'B' }, text: '/start' } });
    const got = await bot.api.getUpdates({ timeout: 0 });
    expect(got.map((u) => u.update_id)).toEqual([first.update_id]);

    // Confirm the first; the queue is empty, so this call waits until an update is pushed.
    const poll = bot.api.getUpdates({ offset: first.update_id + 1, timeout: 30 });
    await tg.waitForCall('getUpdates', (c) => c.body.offset === first.update_id + 1);
    const second = tg.pushUpdate({ callback_query: { id: 'q1', from, chat_instance: 'c', data: 'buy' } });
    expect((await poll).map((u) => u.update_id)).toEqual([second.update_id]);

    await bot.api.setWebhook('https://example.test/tg');
    expect(((await rejection(bot.api.getUpdates())) as GrammyError).error_code).toBe(409);
  });

  it('waitForCall resolves on the event, including calls that already happened', async () => {
    const { tg, bot } = await setup();
    const waiting = tg.waitForCall('sendMessage', (c) => c.body.text === 'second');
    await bot.api.sendMessage(BUYER, 'first');
    await bot.api.sendMessage(BUYER, 'second');
    expect((await waiting).body.text).toBe('second');
    expect((await tg.waitForCall('sendMessage')).body.text).toBe('first');
    await expect(tg.waitForCall('sendMessage', undefined, { after: tg.calls.length, timeoutMs: 20 })).rejects.toThrow(/no matching sendMessage/);
  });

  it('decodes grammY multipart uploads and answers unknown methods with true', async () => {
    const { tg, bot } = await setup();
    await bot.api.raw.sendDocument({ chat_id: BUYER, document: new InputFile(Buffer.from('hello'), 'receipt.txt'), caption: 'receipt' });
    const body = tg.callsOf('sendDocument')[0]?.body ?? {};
    expect(body.chat_id).toBe(String(BUYER)); // form fields are strings on the wire
    expect(body.caption).toBe('receipt');
    const attach = String(body.document);
    expect(attach).toMatch(/^attach:\/\//);
    expect(body[attach.slice('attach://'.length)]).toEqual({ filename: 'receipt.txt', size: 5 });
  });

  it('accepts urlencoded bodies and rejects a wrong token', async () => {
    const { tg } = await setup();
    const form = await fetch(`${tg.apiRoot}/bot${TOKEN}/sendMessage`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ chat_id: String(BUYER), text: 'hi' }),
    });
    expect(await form.json()).toMatchObject({ ok: true, result: { chat: { id: BUYER }, text: 'hi' } });
    const wrong = await fetch(`${tg.apiRoot}/bot1:nope/getMe`, { method: 'POST' });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toEqual({ ok: false, error_code: 401, description: 'Unauthorized' });
  });
});
