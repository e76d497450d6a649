import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Bot } from 'grammy';
import type { InlineKeyboardButton, Update } from 'grammy/types';
import type pg from 'pg';
import { z } from 'zod';
import { renderChatPage } from '../http/pages/chat.page.js';
import { buyerPageContext, sendBuyerPage } from '../http/routes/success-page.route.js';
import type { FakeTelegram, TelegramCall } from './telegram.fake.js';

// The sandbox chat (GET /sandbox/chat): a browser stands in for the Telegram app, so the whole buyer
// journey (/start, a plan, Pay, the payment page, the invite) can be walked on a fresh machine.
//
//   POST /sandbox/chat/send  { user, text }            a message update, handed to the service's bot (bot.handleUpdate)
//   POST /sandbox/chat/tap   { user, message_id, data } a callback_query update for a button the bot sent
//   GET  /sandbox/chat/messages?user=                  the conversation: what this user sent, and what the bot
//                                                      sent to this chat as the fake Bot API recorded it
//
// Nothing here is a second bot: the updates go through the same middleware (join tracking, the buying
// bot, its error handler) as webhook or polling updates, and the answers are the fake's recorded calls.

export interface SandboxChatDeps {
  bot: Bot;
  telegram: FakeTelegram;
  pool: Pick<pg.Pool, 'query'>;
}

export const CHAT_PATH = '/sandbox/chat';

interface ChatMessage {
  from: 'you' | 'bot';
  text: string;
  at: number;
  message_id?: number;
  buttons?: Array<Array<{ text: string; url?: string; callback_data?: string }>>;
}

const userId = z.string().regex(/^[1-9]\d{0,14}$/, 'a Telegram user id: digits, e.g. "123456789"');
const languageCode = z.string().regex(/^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})?$/).optional();

function markupOf(call: TelegramCall): ChatMessage['buttons'] {
  const raw = call.body.reply_markup;
  const markup = (typeof raw === 'string' ? (JSON.parse(raw) as unknown) : raw) as { inline_keyboard?: InlineKeyboardButton[][] } | undefined;
  return markup?.inline_keyboard?.map((row) =>
    row.map((b) => ({ text: b.text, ...('url' in b && b.url ? { url: b.url } : {}), ...('callback_data' in b && b.callback_data ? { callback_data: b.callback_data } : {}) })),
  );
}

export async function sandboxChatRoutes(app: FastifyInstance, deps: SandboxChatDeps): Promise<void> {
  const { bot, telegram } = deps;
  // What each user typed or tapped (the fake records only the bot's side).
  const said = new Map<string, ChatMessage[]>();
  let nextUpdateId = Date.now() % 1_000_000_000;
  let nextMessageId = 1;

  const person = (id: number, lang: string | undefined) => ({ id, is_bot: false, first_name: 'Sandbox buyer', ...(lang && { language_code: lang }) });
  const chat = (id: number) => ({ id, type: 'private' as const, first_name: 'Sandbox buyer' });
  const remember = (user: string, message: ChatMessage) => said.set(user, [...(said.get(user) ?? []), message].slice(-200));

  app.get(CHAT_PATH, { schema: { hide: true } }, async (request, reply) => {
    const c = buyerPageContext(request, null);
    return sendBuyerPage(reply, c.nonce, renderChatPage(c, { botName: bot.botInfo.username }));
  });

  app.withTypeProvider<ZodTypeProvider>().get(
    `${CHAT_PATH}/messages`,
    { schema: { summary: 'Sandbox only: the chat between this user and the bot', querystring: z.object({ user: userId }) } },
    async (request, reply) => {
      const user = request.query.user;
      const fromBot: ChatMessage[] = telegram
        .callsOf('sendMessage')
        .filter((call) => call.acted && String(call.body.chat_id) === user)
        .map((call) => ({
          from: 'bot',
          text: String(call.body.text ?? ''),
          at: call.at,
          message_id: (call.result as { message_id?: number } | undefined)?.message_id ?? 0,
          buttons: markupOf(call) ?? [],
        }));
      const messages = [...(said.get(user) ?? []), ...fromBot].sort((a, b) => a.at - b.at);
      const { rows: channels } = await deps.pool.query<{ open_channel_id: string; title: string }>(
        'SELECT open_channel_id::text AS open_channel_id, title FROM channels ORDER BY created_at, open_channel_id LIMIT 12',
      );
      return reply.header('cache-control', 'no-store').send({ messages, channels });
    },
  );

  app.withTypeProvider<ZodTypeProvider>().post(
    `${CHAT_PATH}/send`,
    { schema: { summary: 'Sandbox only: send the bot a message as this user', body: z.object({ user: userId, text: z.string().trim().min(1).max(4096), language_code: languageCode }) } },
    async (request) => {
      const { user, text, language_code: lang } = request.body;
      const id = Number(user);
      remember(user, { from: 'you', text, at: Date.now() });
      const command = /^\/\w+/.exec(text)?.[0];
      const update = {
        update_id: nextUpdateId++,
        message: {
          message_id: nextMessageId++,
          date: Math.floor(Date.now() / 1000),
          chat: chat(id),
          from: person(id, lang),
          text,
          ...(command && { entities: [{ type: 'bot_command' as const, offset: 0, length: command.length }] }),
        },
      } satisfies Update;
      await bot.handleUpdate(update);
      return { ok: true };
    },
  );

  app.withTypeProvider<ZodTypeProvider>().post(
    `${CHAT_PATH}/tap`,
    {
      schema: {
        summary: 'Sandbox only: tap a button the bot sent this user',
        body: z.object({ user: userId, message_id: z.number().int().nonnegative(), data: z.string().min(1).max(64), language_code: languageCode }),
      },
    },
    async (request) => {
      const { user, data, language_code: lang } = request.body;
      const id = Number(user);
      const tapped = telegram
        .callsOf('sendMessage')
        .find((call) => String(call.body.chat_id) === user && (call.result as { message_id?: number } | undefined)?.message_id === request.body.message_id);
      const label = markupOf(tapped ?? ({ body: {} } as TelegramCall))?.flat().find((b) => b.callback_data === data)?.text ?? data;
      remember(user, { from: 'you', text: `[${label}]`, at: Date.now() });
      const update = {
        update_id: nextUpdateId++,
        callback_query: {
          id: `sandbox-${nextUpdateId}`,
          chat_instance: `sandbox-${user}`,
          from: person(id, lang),
          message: { message_id: request.body.message_id, date: Math.floor(Date.now() / 1000), chat: chat(id), text: String(tapped?.body.text ?? '') },
          data,
        },
      } as Update;
      await bot.handleUpdate(update);
      return { ok: true };
    },
  );
}
