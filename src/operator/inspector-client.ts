// Browser code shared by the operators' inspector and statechart pages (bundled by inspector-assets.ts).
// The pages are public shells; everything they show comes from the authenticated admin API, called with
// the admin token as a bearer header (kept in sessionStorage under the same key as the dashboard's).
// Payment data is only ever written with textContent.

export const TOKEN_KEY = 'telepay-admin';

export type StateValue = string | { [key: string]: StateValue };

export interface JournalRow {
  seq: number;
  event_type: string;
  event: { type: string } & Record<string, unknown>;
  source: string;
  from_state: StateValue | null;
  to_state: StateValue;
  effects: unknown;
  at: string;
}

export interface JournalAnswer {
  payment: { payment_id: string; order_id: string | null; state: string; state_value: StateValue; review_reason: string | null; version: number };
  journal: JournalRow[];
}

export class Unauthorized extends Error {}

export const byId = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element as T;
};

/** /admin/payments/<id>/<page> → <id> */
export function paymentIdFromPath(): string {
  const segment = window.location.pathname.split('/')[3] ?? '';
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export const paymentPath = (paymentId: string, rest = '') => `/admin/payments/${encodeURIComponent(paymentId)}${rest}`;

const authHeader = () => ({ authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) ?? ''}` });

export async function api(path: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(path, { ...init, headers: { ...authHeader(), ...(init.headers as Record<string, string> | undefined) } });
  if (res.status === 401) throw new Unauthorized('The admin token is not valid.');
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { message?: string };
    throw new Error(body.message ?? `${res.status} ${res.statusText}`);
  }
  return res;
}

/** Shows the token form when there is no token (or it was refused); calls start once one is given. */
export function withToken(start: () => void, problem?: string): void {
  const form = byId<HTMLFormElement>('auth');
  const input = byId<HTMLInputElement>('token');
  const note = byId('auth-error');
  if (!problem && sessionStorage.getItem(TOKEN_KEY)) {
    form.hidden = true;
    start();
    return;
  }
  note.textContent = problem ?? '';
  form.hidden = false;
  input.focus();
  form.onsubmit = (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    form.hidden = true;
    start();
  };
}

export function showError(message: string): void {
  byId('error').textContent = message;
}

/** routed: access invited, payout review */
export function stateText(value: StateValue | null | undefined): string {
  if (value === null || value === undefined) return '(new)';
  if (typeof value === 'string') return value;
  return Object.entries(value)
    .map(([key, inner]) => (typeof inner === 'string' ? `${key} ${inner}` : `${key}: ${stateText(inner)}`))
    .join(', ');
}

const el = (tag: string, className: string, text?: string) => {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
};

/** One journal row as a list item: seq, event, source, from → to, when, and the payload on demand. */
export function journalItem(row: JournalRow): HTMLLIElement {
  const li = el('li', 'entry') as HTMLLIElement;
  li.dataset.seq = String(row.seq);
  const head = el('div', 'entry-head');
  head.append(el('span', 'seq', `#${row.seq}`), el('span', 'event', row.event_type), el('span', 'source', row.source));
  const move = el('div', 'move', `${stateText(row.from_state)} → ${stateText(row.to_state)}`);
  const at = el('time', 'at', new Date(row.at).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'));
  at.setAttribute('datetime', row.at);
  const details = el('details', 'payload');
  details.append(el('summary', '', 'payload'), el('pre', '', JSON.stringify(row.event, null, 2)));
  li.append(head, move, at, details);
  return li;
}

export interface Follower {
  stop(): void;
}

/**
 * Follows a payment's journal live: GET …/journal/stream (text/event-stream) read with fetch(), so the
 * admin token travels as a header (EventSource cannot send one). Reconnects with backoff, from the last
 * row it has (after=<seq>), so nothing is missed or repeated.
 */
export function followJournal(
  paymentId: string,
  handlers: { after(): number; onRow(row: JournalRow): void; onLive(live: boolean): void; onUnauthorized(): void },
): Follower {
  const abort = new AbortController();
  let stopped = false;
  const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  void (async () => {
    for (let delay = 1000; !stopped; delay = Math.min(delay * 2, 30_000)) {
      try {
        const res = await api(paymentPath(paymentId, `/journal/stream?after=${handlers.after()}`), { signal: abort.signal, headers: { accept: 'text/event-stream' } });
        if (!res.body) throw new Error('no stream');
        handlers.onLive(true);
        delay = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const lines = block.split('\n');
            const type = lines.find((l) => l.startsWith('event: '))?.slice(7);
            const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
            if (type === 'journal' && data) handlers.onRow(JSON.parse(data) as JournalRow);
          }
        }
      } catch (error) {
        if (error instanceof Unauthorized) {
          handlers.onLive(false);
          handlers.onUnauthorized();
          return;
        }
      }
      if (stopped) return;
      handlers.onLive(false);
      await wait(delay);
    }
  })();
  return {
    stop() {
      stopped = true;
      abort.abort();
    },
  };
}
