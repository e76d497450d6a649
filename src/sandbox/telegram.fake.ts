import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChatInviteLink, Update, UserFromGetMe } from 'grammy/types';
import { createFaults, faultError, type Fault } from './telegram.fake.faults.js';
import { createTelegramModel, type InviteLinkRecord } from './telegram.fake.model.js';
import { ApiError, answer, answerError, decodeBody, readRaw, type Body, type ChatId } from './telegram.fake.wire.js';

// A stand-in for api.telegram.org speaking the wire format grammY 1.46 uses:
//   POST {apiRoot}/bot<token>/<method>  (".../bot<token>/test/<method>" for the test environment)
//   body: JSON, multipart/form-data, HTML form or query string (telegram.fake.wire.ts)
//   answer: { ok: true, result } or { ok: false, error_code, description, parameters? }.
// This file is the HTTP server: it routes a call to injected faults (telegram.fake.faults.ts) or to
// the modelled methods (telegram.fake.model.ts), and records every call for tests to inspect and await.

export type { ChatId, Fault, InviteLinkRecord };

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
  readonly webhook: { url: string; secret_token?: string } | null;
  failNext(method: string, fault: Fault, times?: number): void;
  /** Calls listener for every call from now on (the sandbox logs what the bot "sent"); returns the unsubscribe. */
  onCall(listener: (call: TelegramCall) => void): () => void;
  pushUpdate(update: Omit<Update, 'update_id'> & { update_id?: number }): Update;
  waitForCall(method: string, predicate?: (call: TelegramCall) => boolean, options?: WaitOptions): Promise<TelegramCall>;
  simulateJoin(chatId: ChatId, userId: number, inviteLink: string | ChatInviteLink): Update;
}

export interface FakeTelegramOptions {
  token: string;
  /** How long a timeout fault holds the request before destroying the socket. Infinity: until close(). */
  hangMs?: number;
}

export async function startFakeTelegram(options: FakeTelegramOptions): Promise<FakeTelegram> {
  const { token } = options;
  const model = createTelegramModel(token);
  const faults = createFaults(options.hangMs ?? 2000);
  const calls: TelegramCall[] = [];
  const events = new EventEmitter();
  events.setMaxListeners(0);

  function record(call: TelegramCall): void {
    calls.push(call);
    events.emit('call', call);
  }

  const failed = (e: ApiError) => ({ error_code: e.errorCode, description: e.description });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const match = /^\/bot([^/]+)\/(?:test\/)?([A-Za-z]+)$/.exec(url.pathname);
    const raw = await readRaw(req);
    if (match === null) return answerError(res, new ApiError(404, 'Not Found'));
    const [, pathToken, method = ''] = match;
    if (decodeURIComponent(pathToken ?? '') !== token) return answerError(res, new ApiError(401, 'Unauthorized'));
    let body: Body;
    try {
      body = decodeBody(req, raw, url.searchParams);
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(400, "Bad Request: can't parse JSON object");
      record({ method, body: {}, at: Date.now(), acted: false, error: failed(err) });
      return answerError(res, err);
    }
    const at = Date.now();

    const fault = faults.take(method);
    if (fault !== undefined) {
      const err = faultError(fault);
      if (err !== undefined) {
        record({ method, body, at, fault, acted: false, error: failed(err) });
        return answerError(res, err);
      }
      if (fault.kind === 'timeout-before-acting') {
        record({ method, body, at, fault, acted: false });
        return faults.hang(req, fault.hangMs);
      }
    }

    // A long poll is recorded when it arrives, so a test can wait for it and then push an update; its
    // result is filled in when it returns.
    if (method.toLowerCase() === 'getupdates') {
      const call: TelegramCall = { method, body, at, acted: false };
      record(call);
      try {
        call.result = await model.getUpdates(body);
        call.acted = true;
        answer(res, 200, { ok: true, result: call.result });
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        call.error = failed(e);
        answerError(res, e);
      }
      return;
    }

    try {
      // Method names are case-insensitive on Telegram's side.
      const key = Object.keys(model.handlers).find((k) => k.toLowerCase() === method.toLowerCase());
      const result = key !== undefined ? model.handlers[key]?.(body) : true;
      record({ method, body, at, acted: true, result, ...(fault !== undefined && { fault }) });
      if (fault?.kind === 'timeout-after-acting') return faults.hang(req, fault.hangMs);
      answer(res, 200, { ok: true, result });
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      record({ method, body, at, acted: false, error: failed(e), ...(fault !== undefined && { fault }) });
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

  return {
    apiRoot,
    token,
    botInfo: model.botInfo,
    calls,
    callsOf: (method) => calls.filter((c) => c.method === method),
    inviteLinks: model.inviteLinks,
    members: model.members,
    banned: model.banned,
    get webhook() {
      return model.webhook;
    },
    failNext: (method, fault, times) => faults.failNext(method, fault, times),
    onCall(listener) {
      events.on('call', listener);
      return () => {
        events.off('call', listener);
      };
    },
    pushUpdate: (update) => model.pushUpdate(update),
    waitForCall,
    simulateJoin: (chatId, userId, inviteLink) => model.simulateJoin(chatId, userId, inviteLink),
    close: () =>
      new Promise<void>((resolve, reject) => {
        model.close();
        faults.release();
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
