import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ChatInviteLink, Update, User, UserFromGetMe } from 'grammy/types';

// A stand-in for api.telegram.org speaking the wire format grammY 1.46 uses:
//   POST {apiRoot}/bot<token>/<method>  (".../bot<token>/test/<method>" for the test environment)
//   body: JSON (grammY's default; it drops null/undefined fields), or multipart/form-data when the
//   payload holds an InputFile. Plain HTML forms and GET query strings are accepted too.
//   answer: { ok: true, result } or { ok: false, error_code, description, parameters? }.
// grammY reads the JSON body and ignores the HTTP status, but we mirror Telegram's statuses anyway.
// Descriptions of errors Telegram raises on its own (as opposed to injected faults) are modelled on
// real ones but not all checked against the live API; tests should match on error_code.

export type ChatId = number | string;

export type Fault =
  | { kind: '429'; retryAfter: number }
  | { kind: '403'; description?: string }
  | { kind: '400'; description: string }
  | { kind: '500' }
  // Telegram acted (link created, message sent) but the answer never arrives: the case that makes a
  // blind retry produce a duplicate.
  | { kind: 'timeout-after-acting'; hangMs?: number }
  | { kind: 'timeout-before-acting'; hangMs?: number };

export interface TelegramCall {
  method: string;
  body: Record<string, unknown>;
  at: number;
  /** Set when the answer came from failNext rather than from the fake's own logic. */
  fault?: Fault;
  /** Whether Telegram acted: true for successes and for timeout-after-acting. */
  acted: boolean;
  result?: unknown;
  error?: { error_code: number; description: string };
}

export interface InviteLinkRecord {
  chatId: ChatId;
  link: ChatInviteLink;
  /** Users who joined through this link. */
  joined: Set<number>;
  /** Users whose join request through this link awaits approval. */
  pending: Set<number>;
}

export interface WaitOptions {
  /** Only consider calls at this index of `calls` or later. Default 0: a call that already happened counts. */
  after?: number;
  /** Reject after this long, listing the calls seen, instead of leaving the test to its own timeout. */
  timeoutMs?: number;
}

export interface FakeTelegram {
  apiRoot: string;
  token: string;
  botInfo: UserFromGetMe;
  close(): Promise<void>;
  calls: TelegramCall[];
  callsOf(method: string): TelegramCall[];
  inviteLinks: Map<string, InviteLinkRecord>;
  members: Map<ChatId, Set<number>>;
  banned: Map<ChatId, Set<number>>;
  joinRequests: Map<ChatId, Set<number>>;
  readonly webhook: { url: string; secret_token?: string } | null;
  failNext(method: string, fault: Fault, times?: number): void;
  /** Calls listener for every call from now on (the sandbox logs what the bot "sent"); returns the unsubscribe. */
  onCall(listener: (call: TelegramCall) => void): () => void;
  pushUpdate(update: Omit<Update, 'update_id'> & { update_id?: number }): Update;
  waitForCall(method: string, predicate?: (call: TelegramCall) => boolean, options?: WaitOptions): Promise<TelegramCall>;
  simulateJoin(chatId: ChatId, userId: number, inviteLink: string | ChatInviteLink): Update;
  simulateJoinRequest(chatId: ChatId, userId: number, inviteLink: string | ChatInviteLink): Update;
  simulateLeave(chatId: ChatId, userId: number): Update;
}

class ApiError extends Error {
  constructor(
    readonly errorCode: number,
    readonly description: string,
    readonly parameters?: Record<string, unknown>,
  ) {
    super(description);
  }
}

type Body = Record<string, unknown>;

async function readRaw(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

// grammY writes its own multipart stream with unusual but valid headers: no space after the colon and
// an unquoted filename (`content-disposition:form-data;name="x7Gk";filename=photo.jpg`). Objects inside
// are JSON strings, as Telegram expects; files are referenced as "attach://<name>".
function parseMultipart(raw: Buffer, boundary: string): Body {
  const out: Body = {};
  const delimiter = Buffer.from(`--${boundary}`);
  let start = raw.indexOf(delimiter);
  while (start !== -1) {
    const from = start + delimiter.length;
    if (raw.subarray(from, from + 2).toString() === '--') break;
    const end = raw.indexOf(delimiter, from);
    if (end === -1) break;
    // Each part sits between "\r\n" after the delimiter and "\r\n" before the next one.
    const part = raw.subarray(from + 2, end - 2);
    const split = part.indexOf('\r\n\r\n');
    if (split !== -1) {
      const head = part.subarray(0, split).toString('utf8');
      const content = part.subarray(split + 4);
      const name = /name="([^"]*)"/i.exec(head)?.[1];
      const filename = /filename="?([^";\r\n]*)"?/i.exec(head)?.[1];
      if (name !== undefined) {
        out[name] = filename !== undefined ? { filename, size: content.length } : content.toString('utf8');
      }
    }
    start = end;
  }
  return out;
}

function decodeBody(req: IncomingMessage, raw: Buffer, query: URLSearchParams): Body {
  const body: Body = Object.fromEntries(query);
  if (raw.length === 0) return body;
  const type = req.headers['content-type'] ?? '';
  if (type.startsWith('application/json')) {
    const parsed: unknown = JSON.parse(raw.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ApiError(400, 'Bad Request: request body must be a JSON object');
    }
    return { ...body, ...(parsed as Body) };
  }
  if (type.startsWith('application/x-www-form-urlencoded')) {
    return { ...body, ...Object.fromEntries(new URLSearchParams(raw.toString('utf8'))) };
  }
  const boundary = /boundary=("?)([^";]+)\1/i.exec(type)?.[2];
  if (type.startsWith('multipart/form-data') && boundary !== undefined) {
    return { ...body, ...parseMultipart(raw, boundary) };
  }
  throw new ApiError(400, `Bad Request: unsupported content type ${type}`);
}

// Form and multipart values arrive as strings; Telegram coerces them, so do we.
function chatIdOf(v: unknown): ChatId | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  if (typeof v === 'string' && /^@\w+$/.test(v)) return v;
  return undefined;
}

function intOf(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  return undefined;
}

function boolOf(v: unknown): boolean {
  return v === true || v === 'true' || v === 1 || v === '1';
}

function jsonOf(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v) as unknown;
  } catch {
    return v;
  }
}

function requireChat(body: Body): ChatId {
  const id = chatIdOf(body.chat_id);
  if (id === undefined) throw new ApiError(400, 'Bad Request: chat_id is empty');
  return id;
}

function requireUser(body: Body): number {
  const id = intOf(body.user_id);
  if (id === undefined) throw new ApiError(400, 'Bad Request: user_id is empty');
  return id;
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

export interface FakeTelegramOptions {
  token: string;
  /** How long a timeout fault holds the request before destroying the socket. Infinity: until close(). */
  hangMs?: number;
}

export async function startFakeTelegram(options: FakeTelegramOptions): Promise<FakeTelegram> {
  const { token } = options;
  const defaultHangMs = options.hangMs ?? 2000;
  const botId = Number(/^(\d+):/.exec(token)?.[1] ?? 1);
  const botInfo: UserFromGetMe = {
    id: botId,
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
  const botUser: User = { id: botId, is_bot: true, first_name: botInfo.first_name, username: botInfo.username };

  const calls: TelegramCall[] = [];
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const faults = new Map<string, { fault: Fault; remaining: number }[]>();
  const inviteLinks = new Map<string, InviteLinkRecord>();
  const members = new Map<ChatId, Set<number>>();
  const banned = new Map<ChatId, Set<number>>();
  const joinRequests = new Map<ChatId, Set<number>>();
  const messageIds = new Map<ChatId, number>();
  let webhook: { url: string; secret_token?: string } | null = null;
  let updates: Update[] = [];
  let nextUpdateId = 100_000;
  const pollers = new Set<() => void>();
  const held = new Set<{ socket: Socket; timer: NodeJS.Timeout | undefined }>();
  let closed = false;

  function takeFault(method: string): Fault | undefined {
    const queue = faults.get(method);
    const head = queue?.[0];
    if (queue === undefined || head === undefined) return undefined;
    head.remaining -= 1;
    if (head.remaining <= 0) queue.shift();
    return head.fault;
  }

  function record(call: TelegramCall): void {
    calls.push(call);
    events.emit('call', call);
  }

  function linkOf(chatId: ChatId, ref: string | ChatInviteLink): InviteLinkRecord {
    const url = typeof ref === 'string' ? ref : ref.invite_link;
    const rec = inviteLinks.get(url);
    if (rec === undefined || rec.chatId !== chatId) throw new ApiError(400, 'Bad Request: INVITE_HASH_EXPIRED');
    return rec;
  }

  // Each handler validates, mutates state and returns the result; it throws ApiError to answer ok:false.
  const handlers: Record<string, (body: Body) => unknown> = {
    getMe: () => botInfo,

    sendMessage: (body) => {
      const chatId = requireChat(body);
      if (typeof body.text !== 'string' || body.text.trim() === '') throw new ApiError(400, 'Bad Request: message text is empty');
      if (body.text.length > 4096) throw new ApiError(400, 'Bad Request: message is too long');
      const messageId = (messageIds.get(chatId) ?? 0) + 1;
      messageIds.set(chatId, messageId);
      const message: Record<string, unknown> = {
        message_id: messageId,
        from: botUser,
        chat: chatObject(chatId),
        date: nowSeconds(),
        text: body.text,
      };
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
      inviteLinks.set(link.invite_link, { chatId, link, joined: new Set(), pending: new Set() });
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
      setOf(joinRequests, chatId).delete(userId);
      for (const rec of inviteLinks.values()) {
        if (rec.chatId === chatId && rec.pending.delete(userId)) rec.link.pending_join_request_count = rec.pending.size;
      }
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

    approveChatJoinRequest: (body) => {
      const chatId = requireChat(body);
      const userId = requireUser(body);
      if (!setOf(joinRequests, chatId).delete(userId)) throw new ApiError(400, 'Bad Request: HIDE_REQUESTER_MISSING');
      setOf(members, chatId).add(userId);
      for (const rec of inviteLinks.values()) {
        if (rec.chatId === chatId && rec.pending.delete(userId)) {
          rec.joined.add(userId);
          rec.link.pending_join_request_count = rec.pending.size;
        }
      }
      return true;
    },

    declineChatJoinRequest: (body) => {
      const chatId = requireChat(body);
      const userId = requireUser(body);
      if (!setOf(joinRequests, chatId).delete(userId)) throw new ApiError(400, 'Bad Request: HIDE_REQUESTER_MISSING');
      for (const rec of inviteLinks.values()) {
        if (rec.chatId === chatId && rec.pending.delete(userId)) rec.link.pending_join_request_count = rec.pending.size;
      }
      return true;
    },

    getChatMember: (body) => {
      const chatId = requireChat(body);
      const userId = requireUser(body);
      if (userId === botId) {
        return {
          status: 'administrator',
          user: botUser,
          can_be_edited: false,
          is_anonymous: false,
          can_manage_chat: true,
          can_delete_messages: true,
          can_manage_video_chats: false,
          can_restrict_members: true,
          can_promote_members: false,
          can_change_info: false,
          can_invite_users: true,
          can_post_stories: false,
          can_edit_stories: false,
          can_delete_stories: false,
          can_send_welcome_messages: false,
        };
      }
      const user = userObject(userId);
      if (banned.get(chatId)?.has(userId)) return { status: 'kicked', user, until_date: 0 };
      if (members.get(chatId)?.has(userId)) return { status: 'member', user };
      return { status: 'left', user };
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

    deleteWebhook: (body) => {
      webhook = null;
      if (boolOf(body.drop_pending_updates)) updates = [];
      return true;
    },

    getWebhookInfo: () => ({ url: webhook?.url ?? '', has_custom_certificate: false, pending_update_count: updates.length }),
  };

  // getUpdates is asynchronous (long polling), so it is handled apart from the table above.
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

  function answer(res: ServerResponse, status: number, payload: unknown): void {
    if (res.writableEnded || res.destroyed) return;
    const text = JSON.stringify(payload);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  function answerError(res: ServerResponse, e: ApiError): void {
    answer(res, e.errorCode, {
      ok: false,
      error_code: e.errorCode,
      description: e.description,
      ...(e.parameters !== undefined && { parameters: e.parameters }),
    });
  }

  // Never answer; drop the connection after hangMs (or at close()), which the client sees as a network
  // error or its own timeout.
  function hang(req: IncomingMessage, hangMs: number | undefined): void {
    const ms = hangMs ?? defaultHangMs;
    const entry: { socket: Socket; timer: NodeJS.Timeout | undefined } = { socket: req.socket, timer: undefined };
    if (Number.isFinite(ms)) {
      entry.timer = setTimeout(() => {
        held.delete(entry);
        entry.socket.destroy();
      }, ms);
    }
    held.add(entry);
    req.socket.once('close', () => {
      clearTimeout(entry.timer);
      held.delete(entry);
    });
  }

  function faultError(fault: Fault): ApiError | undefined {
    switch (fault.kind) {
      case '429':
        return new ApiError(429, `Too Many Requests: retry after ${fault.retryAfter}`, { retry_after: fault.retryAfter });
      case '403':
        return new ApiError(403, fault.description ?? 'Forbidden: bot was blocked by the user');
      case '400':
        return new ApiError(400, fault.description);
      case '500':
        return new ApiError(500, 'Internal Server Error');
      default:
        return undefined;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const match = /^\/bot([^/]+)\/(?:test\/)?([A-Za-z]+)$/.exec(url.pathname);
    const raw = await readRaw(req);
    if (match === null) {
      answerError(res, new ApiError(404, 'Not Found'));
      return;
    }
    const [, pathToken, method = ''] = match;
    if (decodeURIComponent(pathToken ?? '') !== token) {
      answerError(res, new ApiError(401, 'Unauthorized'));
      return;
    }
    let body: Body;
    try {
      body = decodeBody(req, raw, url.searchParams);
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(400, "Bad Request: can't parse JSON object");
      record({ method, body: {}, at: Date.now(), acted: false, error: { error_code: err.errorCode, description: err.description } });
      answerError(res, err);
      return;
    }
    const at = Date.now();

    const fault = takeFault(method);
    if (fault !== undefined) {
      const err = faultError(fault);
      if (err !== undefined) {
        record({ method, body, at, fault, acted: false, error: { error_code: err.errorCode, description: err.description } });
        answerError(res, err);
        return;
      }
      if (fault.kind === 'timeout-before-acting') {
        record({ method, body, at, fault, acted: false });
        hang(req, fault.hangMs);
        return;
      }
    }

    // A long poll is recorded when it arrives, so a test can wait for it and then push an update; its
    // result is filled in when it returns.
    if (method.toLowerCase() === 'getupdates') {
      const call: TelegramCall = { method, body, at, acted: false };
      record(call);
      try {
        call.result = await getUpdates(body);
        call.acted = true;
        answer(res, 200, { ok: true, result: call.result });
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        call.error = { error_code: e.errorCode, description: e.description };
        answerError(res, e);
      }
      return;
    }

    try {
      // Method names are case-insensitive on Telegram's side.
      const key = Object.keys(handlers).find((k) => k.toLowerCase() === method.toLowerCase());
      const result = key !== undefined ? handlers[key]?.(body) : true;
      record({ method, body, at, acted: true, result, ...(fault !== undefined && { fault }) });
      if (fault?.kind === 'timeout-after-acting') {
        hang(req, fault.hangMs);
        return;
      }
      answer(res, 200, { ok: true, result });
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      record({ method, body, at, acted: false, error: { error_code: e.errorCode, description: e.description }, ...(fault !== undefined && { fault }) });
      answerError(res, e);
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      answerError(res, new ApiError(500, `Internal Server Error: ${String(err)}`));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const apiRoot = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  function pushUpdate(update: Omit<Update, 'update_id'> & { update_id?: number }): Update {
    const full = { ...update, update_id: update.update_id ?? nextUpdateId++ } as Update;
    updates.push(full);
    for (const wake of [...pollers]) wake();
    return full;
  }

  function waitForCall(method: string, predicate?: (call: TelegramCall) => boolean, opts: WaitOptions = {}): Promise<TelegramCall> {
    const matches = (c: TelegramCall): boolean => c.method === method && (predicate === undefined || predicate(c));
    const past = calls.slice(opts.after ?? 0).find(matches);
    if (past !== undefined) return Promise.resolve(past);
    return new Promise((resolve, reject) => {
      const onCall = (c: TelegramCall): void => {
        if (!matches(c)) return;
        clearTimeout(timer);
        events.off('call', onCall);
        resolve(c);
      };
      const timeoutMs = opts.timeoutMs ?? 4000;
      const timer = setTimeout(() => {
        events.off('call', onCall);
        const seen = calls.map((c) => c.method + (c.fault ? `(${c.fault.kind})` : '')).join(', ') || 'none';
        reject(new Error(`fake Telegram: no matching ${method} call within ${timeoutMs} ms; calls: ${seen}`));
      }, timeoutMs);
      events.on('call', onCall);
    });
  }

  function joinUpdate(chatId: ChatId, userId: number, from: 'left' | 'member', to: 'left' | 'member', link?: ChatInviteLink): Update {
    const user = userObject(userId);
    return pushable({
      chat_member: {
        chat: chatObject(chatId),
        from: user,
        date: nowSeconds(),
        old_chat_member: { status: from, user },
        new_chat_member: { status: to, user },
        ...(link !== undefined && { invite_link: { ...link } }),
      },
    });
  }

  // Updates handed to the test are numbered like queued ones but not queued: the test decides whether
  // they go to a webhook or to pushUpdate.
  function pushable(partial: Record<string, unknown>): Update {
    return { update_id: nextUpdateId++, ...partial } as unknown as Update;
  }

  // Throws (like Telegram refusing the join) when the link cannot admit this user.
  function simulateJoin(chatId: ChatId, userId: number, ref: string | ChatInviteLink): Update {
    const rec = linkOf(chatId, ref);
    const { link } = rec;
    if (link.is_revoked) throw new Error(`fake Telegram: ${link.invite_link} is revoked`);
    if (link.expire_date !== undefined && link.expire_date <= nowSeconds()) throw new Error(`fake Telegram: ${link.invite_link} has expired`);
    if (link.creates_join_request) throw new Error('fake Telegram: this link creates join requests; use simulateJoinRequest');
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
    return joinUpdate(chatId, userId, 'left', 'member', link);
  }

  function simulateJoinRequest(chatId: ChatId, userId: number, ref: string | ChatInviteLink): Update {
    const rec = linkOf(chatId, ref);
    if (rec.link.is_revoked) throw new Error(`fake Telegram: ${rec.link.invite_link} is revoked`);
    if (!rec.link.creates_join_request) throw new Error('fake Telegram: this link admits directly; use simulateJoin');
    if (banned.get(chatId)?.has(userId)) throw new Error(`fake Telegram: user ${userId} is banned from ${chatId}`);
    setOf(joinRequests, chatId).add(userId);
    rec.pending.add(userId);
    rec.link.pending_join_request_count = rec.pending.size;
    return pushable({
      chat_join_request: {
        chat: chatObject(chatId),
        from: userObject(userId),
        user_chat_id: userId,
        date: nowSeconds(),
        invite_link: { ...rec.link },
      },
    });
  }

  function simulateLeave(chatId: ChatId, userId: number): Update {
    setOf(members, chatId).delete(userId);
    return joinUpdate(chatId, userId, 'member', 'left');
  }

  return {
    apiRoot,
    token,
    botInfo,
    calls,
    callsOf: (method) => calls.filter((c) => c.method === method),
    inviteLinks,
    members,
    banned,
    joinRequests,
    get webhook() {
      return webhook;
    },
    failNext(method, fault, times = 1) {
      const queue = faults.get(method) ?? [];
      queue.push({ fault, remaining: times });
      faults.set(method, queue);
    },
    onCall(listener) {
      events.on('call', listener);
      return () => {
        events.off('call', listener);
      };
    },
    pushUpdate,
    waitForCall,
    simulateJoin,
    simulateJoinRequest,
    simulateLeave,
    close: () =>
      new Promise<void>((resolve, reject) => {
        closed = true;
        for (const wake of [...pollers]) wake();
        for (const entry of held) {
          clearTimeout(entry.timer);
          entry.socket.destroy();
        }
        held.clear();
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
