import { randomBytes } from 'node:crypto';
import type { ChatInviteLink, Update, User, UserFromGetMe } from 'grammy/types';
import { ApiError, boolOf, intOf, jsonOf, requireChat, requireUser, type Body, type ChatId } from './telegram.fake.wire.js';

// What the fake Bot API remembers and how each method changes it: the bot, invite links, members and
// bans of chats, messages, the webhook and the update queue. Only the methods the service calls are
// modelled; any other method answers `true`. Descriptions of errors Telegram raises on its own are
// modelled on real ones but not all checked against the live API; tests should match on error_code.

export interface InviteLinkRecord {
  chatId: ChatId;
  link: ChatInviteLink;
  /** Users who joined through this link. */
  joined: Set<number>;
}

export interface TelegramModel {
  botInfo: UserFromGetMe;
  inviteLinks: Map<string, InviteLinkRecord>;
  members: Map<ChatId, Set<number>>;
  banned: Map<ChatId, Set<number>>;
  readonly webhook: { url: string; secret_token?: string } | null;
  /** Synchronous methods: validate, change the state, return the result; throw ApiError to answer ok:false. */
  handlers: Record<string, (body: Body) => unknown>;
  /** Long polling: answers at once when updates are queued, else waits up to `timeout` seconds for one. */
  getUpdates(body: Body): Promise<Update[]>;
  pushUpdate(update: Omit<Update, 'update_id'> & { update_id?: number }): Update;
  simulateJoin(chatId: ChatId, userId: number, inviteLink: string | ChatInviteLink): Update;
  /** Wakes every waiting long poll and makes later ones answer at once. */
  close(): void;
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

function userObject(id: number): User {
  return { id, is_bot: false, first_name: `User${id}` };
}

function chatObject(chatId: ChatId): Record<string, unknown> {
  if (typeof chatId === 'string') return { id: -1_000_000_000_001, type: 'channel', title: chatId.slice(1), username: chatId.slice(1) };
  if (chatId > 0) return { id: chatId, type: 'private', first_name: `User${chatId}` };
  return { id: chatId, type: 'supergroup', title: `Chat ${chatId}` };
}

function setOf<K>(map: Map<K, Set<number>>, key: K): Set<number> {
  let set = map.get(key);
  if (set === undefined) {
    set = new Set();
    map.set(key, set);
  }
  return set;
}

function botInfoOf(token: string): UserFromGetMe {
  return {
    id: Number(/^(\d+):/.exec(token)?.[1] ?? 1),
    is_bot: true,
    first_name: 'Fake Bot',
    username: 'fake_telepay_bot',
    can_join_groups: true,
    can_read_all_group_messages: false,
    supports_inline_queries: false,
    can_connect_to_business: false,
    has_main_web_app: false,
    has_topics_enabled: false,
    allows_users_to_create_topics: false,
    can_manage_bots: false,
    supports_join_request_queries: false,
  };
}

export function createTelegramModel(token: string): TelegramModel {
  const botInfo = botInfoOf(token);
  const botUser: User = { id: botInfo.id, is_bot: true, first_name: botInfo.first_name, username: botInfo.username };
  const inviteLinks = new Map<string, InviteLinkRecord>();
  const members = new Map<ChatId, Set<number>>();
  const banned = new Map<ChatId, Set<number>>();
  const messageIds = new Map<ChatId, number>();
  let webhook: { url: string; secret_token?: string } | null = null;
  let updates: Update[] = [];
  let nextUpdateId = 100_000;
  const pollers = new Set<() => void>();
  let closed = false;

  function linkOf(chatId: ChatId, ref: string | ChatInviteLink): InviteLinkRecord {
    const url = typeof ref === 'string' ? ref : ref.invite_link;
    const rec = inviteLinks.get(url);
    if (rec === undefined || rec.chatId !== chatId) throw new ApiError(400, 'Bad Request: INVITE_HASH_EXPIRED');
    return rec;
  }

  const handlers: Record<string, (body: Body) => unknown> = {
    getMe: () => botInfo,

    sendMessage: (body) => {
      const chatId = requireChat(body);
      if (typeof body.text !== 'string' || body.text.trim() === '') throw new ApiError(400, 'Bad Request: message text is empty');
      if (body.text.length > 4096) throw new ApiError(400, 'Bad Request: message is too long');
      const messageId = (messageIds.get(chatId) ?? 0) + 1;
      messageIds.set(chatId, messageId);
      const message: Record<string, unknown> = { message_id: messageId, from: botUser, chat: chatObject(chatId), date: nowSeconds(), text: body.text };
      if (body.reply_markup !== undefined) message.reply_markup = jsonOf(body.reply_markup);
      return message;
    },

    createChatInviteLink: (body) => {
      const chatId = requireChat(body);
      const memberLimit = body.member_limit === undefined ? undefined : intOf(body.member_limit);
      const expireDate = body.expire_date === undefined ? undefined : intOf(body.expire_date);
      const joinRequest = boolOf(body.creates_join_request);
      const name = typeof body.name === 'string' ? body.name : undefined;
      if (memberLimit !== undefined && (memberLimit < 1 || memberLimit > 99_999)) {
        throw new ApiError(400, 'Bad Request: member limit must be between 1 and 99999');
      }
      if (memberLimit !== undefined && joinRequest) {
        throw new ApiError(400, "Bad Request: member_limit can't be specified for links requiring approval");
      }
      if (name !== undefined && name.length > 32) throw new ApiError(400, 'Bad Request: invite link name is too long');
      const link: ChatInviteLink = {
        invite_link: `https://t.me/+${randomBytes(12).toString('base64url')}`,
        creator: botUser,
        creates_join_request: joinRequest,
        is_primary: false,
        is_revoked: false,
        ...(name !== undefined && { name }),
        ...(expireDate !== undefined && { expire_date: expireDate }),
        ...(memberLimit !== undefined && { member_limit: memberLimit }),
        ...(joinRequest && { pending_join_request_count: 0 }),
      };
      inviteLinks.set(link.invite_link, { chatId, link, joined: new Set() });
      return { ...link };
    },

    // Like Telegram's Bot API server, an edit sets every field anew: a field left out is reset (no
    // name, no member limit, no expiry), so a caller must send again what it wants to keep.
    editChatInviteLink: (body) => {
      const chatId = requireChat(body);
      if (typeof body.invite_link !== 'string') throw new ApiError(400, 'Bad Request: invite_link is empty');
      const rec = linkOf(chatId, body.invite_link);
      const { link } = rec;
      if (link.is_revoked || (link.expire_date !== undefined && link.expire_date <= nowSeconds())) {
        throw new ApiError(400, 'Bad Request: INVITE_HASH_EXPIRED');
      }
      const memberLimit = body.member_limit === undefined ? undefined : intOf(body.member_limit);
      const expireDate = body.expire_date === undefined ? undefined : intOf(body.expire_date);
      const name = typeof body.name === 'string' ? body.name : undefined;
      if (memberLimit !== undefined && (memberLimit < 1 || memberLimit > 99_999)) {
        throw new ApiError(400, 'Bad Request: member limit must be between 1 and 99999');
      }
      if (name !== undefined && name.length > 32) throw new ApiError(400, 'Bad Request: invite link name is too long');
      delete link.name;
      delete link.member_limit;
      delete link.expire_date;
      if (name !== undefined) link.name = name;
      if (memberLimit !== undefined) link.member_limit = memberLimit;
      if (expireDate !== undefined) link.expire_date = expireDate;
      return { ...link };
    },

    revokeChatInviteLink: (body) => {
      const chatId = requireChat(body);
      if (typeof body.invite_link !== 'string') throw new ApiError(400, 'Bad Request: invite_link is empty');
      const rec = linkOf(chatId, body.invite_link);
      // Revoking twice answers with the revoked link again.
      rec.link.is_revoked = true;
      return { ...rec.link };
    },

    banChatMember: (body) => {
      const chatId = requireChat(body);
      const userId = requireUser(body);
      setOf(members, chatId).delete(userId);
      setOf(banned, chatId).add(userId);
      return true;
    },

    // Telegram: "By default, this method guarantees that after the call the user is not a member of the
    // chat, but will be able to join it." So without only_if_banned a current member is removed.
    unbanChatMember: (body) => {
      const chatId = requireChat(body);
      const userId = requireUser(body);
      if (setOf(banned, chatId).delete(userId)) return true;
      if (!boolOf(body.only_if_banned)) setOf(members, chatId).delete(userId);
      return true;
    },

    answerCallbackQuery: (body) => {
      if (typeof body.callback_query_id !== 'string') throw new ApiError(400, 'Bad Request: query_id is empty');
      return true;
    },

    setWebhook: (body) => {
      const url = typeof body.url === 'string' ? body.url : '';
      webhook = url === '' ? null : { url, ...(typeof body.secret_token === 'string' && { secret_token: body.secret_token }) };
      if (boolOf(body.drop_pending_updates)) updates = [];
      return true;
    },

    // grammY's bot.start() (long polling) deletes the webhook first.
    deleteWebhook: (body) => {
      webhook = null;
      if (boolOf(body.drop_pending_updates)) updates = [];
      return true;
    },
  };

  async function getUpdates(body: Body): Promise<Update[]> {
    if (webhook !== null) {
      throw new ApiError(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first");
    }
    const offset = intOf(body.offset);
    const limit = Math.min(Math.max(intOf(body.limit) ?? 100, 1), 100);
    const timeout = Math.max(intOf(body.timeout) ?? 0, 0);
    // Asking with an offset confirms every update below it; a negative offset keeps only the last ones.
    if (offset !== undefined && offset >= 0) updates = updates.filter((u) => u.update_id >= offset);
    if (offset !== undefined && offset < 0) updates = updates.slice(offset);
    if (updates.length === 0 && timeout > 0 && !closed) {
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          pollers.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, timeout * 1000);
        pollers.add(wake);
      });
    }
    return updates.slice(0, limit);
  }

  function pushUpdate(update: Omit<Update, 'update_id'> & { update_id?: number }): Update {
    const full = { ...update, update_id: update.update_id ?? nextUpdateId++ } as Update;
    updates.push(full);
    for (const wake of [...pollers]) wake();
    return full;
  }

  // Throws (like Telegram refusing the join) when the link cannot admit this user. The update it answers
  // is numbered like queued ones but not queued: the test decides whether it goes to a webhook or to pushUpdate.
  function simulateJoin(chatId: ChatId, userId: number, ref: string | ChatInviteLink): Update {
    const rec = linkOf(chatId, ref);
    const { link } = rec;
    if (link.is_revoked) throw new Error(`fake Telegram: ${link.invite_link} is revoked`);
    if (link.expire_date !== undefined && link.expire_date <= nowSeconds()) throw new Error(`fake Telegram: ${link.invite_link} has expired`);
    if (link.creates_join_request) throw new Error('fake Telegram: links that create join requests are not modelled');
    if (banned.get(chatId)?.has(userId)) throw new Error(`fake Telegram: user ${userId} is banned from ${chatId}`);
    const chatMembers = setOf(members, chatId);
    if (chatMembers.has(userId)) throw new Error(`fake Telegram: user ${userId} is already a member of ${chatId}`);
    // member_limit counts members who joined through the link and are still in the chat.
    const current = [...rec.joined].filter((u) => chatMembers.has(u)).length;
    if (link.member_limit !== undefined && current >= link.member_limit) {
      throw new Error(`fake Telegram: ${link.invite_link} reached its member limit`);
    }
    chatMembers.add(userId);
    rec.joined.add(userId);
    const user = userObject(userId);
    const chat_member = {
      chat: chatObject(chatId),
      from: user,
      date: nowSeconds(),
      old_chat_member: { status: 'left', user },
      new_chat_member: { status: 'member', user },
      invite_link: { ...link },
    };
    return { update_id: nextUpdateId++, chat_member } as unknown as Update;
  }

  return {
    botInfo,
    inviteLinks,
    members,
    banned,
    get webhook() {
      return webhook;
    },
    handlers,
    getUpdates,
    pushUpdate,
    simulateJoin,
    close() {
      closed = true;
      for (const wake of [...pollers]) wake();
    },
  };
}
