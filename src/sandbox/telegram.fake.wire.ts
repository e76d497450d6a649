import type { IncomingMessage, ServerResponse } from 'node:http';

// The fake Bot API's wire format (see telegram.fake.ts): request bodies as grammY 1.46 sends them
// (JSON by default, multipart/form-data when a payload holds an InputFile; plain HTML forms and GET
// query strings too), Telegram's coercion of form values, and its answer envelope
// { ok: true, result } / { ok: false, error_code, description, parameters? }.

export type ChatId = number | string;
export type Body = Record<string, unknown>;

/** An answer with ok:false; thrown by handlers and turned into Telegram's error envelope. */
export class ApiError extends Error {
  constructor(
    readonly errorCode: number,
    readonly description: string,
    readonly parameters?: Record<string, unknown>,
  ) {
    super(description);
  }
}

export async function readRaw(req: IncomingMessage): Promise<Buffer> {
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

export function decodeBody(req: IncomingMessage, raw: Buffer, query: URLSearchParams): Body {
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
export function chatIdOf(v: unknown): ChatId | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  if (typeof v === 'string' && /^@\w+$/.test(v)) return v;
  return undefined;
}

export function intOf(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  return undefined;
}

export function boolOf(v: unknown): boolean {
  return v === true || v === 'true' || v === 1 || v === '1';
}

export function jsonOf(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v) as unknown;
  } catch {
    return v;
  }
}

export function requireChat(body: Body): ChatId {
  const id = chatIdOf(body.chat_id);
  if (id === undefined) throw new ApiError(400, 'Bad Request: chat_id is empty');
  return id;
}

export function requireUser(body: Body): number {
  const id = intOf(body.user_id);
  if (id === undefined) throw new ApiError(400, 'Bad Request: user_id is empty');
  return id;
}

// grammY reads the JSON body and ignores the HTTP status, but we mirror Telegram's statuses anyway.
export function answer(res: ServerResponse, status: number, payload: unknown): void {
  if (res.writableEnded || res.destroyed) return;
  const text = JSON.stringify(payload);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function answerError(res: ServerResponse, e: ApiError): void {
  answer(res, e.errorCode, {
    ok: false,
    error_code: e.errorCode,
    description: e.description,
    ...(e.parameters !== undefined && { parameters: e.parameters }),
  });
}
