import { createBrowserInspector } from '@statelyai/inspect';
import { createActor } from 'xstate';
import { EFFECTS, type PaymentEvent } from '../machines/payment.events.js';
import { paymentMachine } from '../machines/payment.machine.js';
import {
  api,
  byId,
  followJournal,
  journalItem,
  paymentIdFromPath,
  paymentPath,
  showError,
  stateText,
  Unauthorized,
  withToken,
  type JournalAnswer,
  type JournalRow,
  type StateValue,
} from './inspector-client.js';

// The inspector page (GET /admin/payments/:id/inspect), in the operator's browser. It replays the
// payment's journal through a real XState actor of the payment machine, the very definition the engine
// runs (bundled from src/machines), with the Stately inspector attached, then follows the journal live.
// A replay decides again; it never acts: the machine's effect actions are no-ops already, and are
// replaced here by explicit no-ops besides, and nothing on this page can write (the API it calls is
// read-only). The inspector's UI (INSPECTOR_URL, Stately's by default) gets, through postMessage, the
// actor with its definition, then every event in journal order with its payload, and the snapshot after each.

const noEffects = Object.fromEntries(EFFECTS.map((name) => [`effect.${name}`, () => {}]));
const replayMachine = paymentMachine.provide({ actions: noEffects as Parameters<typeof paymentMachine.provide>[0]['actions'] });

const CONNECTED = '@statelyai.connected';
const paymentId = paymentIdFromPath();
const inspectorUrl = document.body.dataset.inspectorUrl ?? 'https://stately.ai/inspect';
const rows: JournalRow[] = [];
let lastSeq = 0;
/** The state value the engine stored, as last read. */
let stored: unknown = null;

interface Session {
  send(row: JournalRow): void;
  value(): unknown;
  stop(): void;
  target(): Window | null;
}

/** JSON with keys sorted (Postgres' jsonb does not keep key order), to compare state values. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  );

/** One inspector target (the embedded frame or a window of its own) with its own replaying actor. */
function startSession(frame: HTMLIFrameElement | null): Session {
  if (frame) {
    // The adapter learns the frame's window on the frame's load event; an inspector that says it is
    // connected before that would miss everything replayed so far. Then say it again, once loaded.
    let early = false;
    window.addEventListener('message', (event) => {
      if ((event.data as { type?: unknown } | null)?.type === CONNECTED && event.source === frame.contentWindow && !frame.dataset.loaded) early = true;
    });
    frame.addEventListener('load', () => {
      frame.dataset.loaded = 'yes';
      if (early) window.postMessage({ type: CONNECTED }, window.location.origin);
      early = false;
    });
  }
  // The inspector UI is a third party's page (stately.ai by default): a buyer's invite link admits
  // whoever holds it, so it never leaves this page.
  const inspector = createBrowserInspector({ url: inspectorUrl, iframe: frame, maxDeferredEvents: 100_000, sanitizeEvent: hideInviteLinks, sanitizeContext: hideInviteLinks });
  const actor = createActor(replayMachine, { input: { paymentId }, inspect: inspector.inspect });
  actor.start();
  const session: Session = {
    send: (row) => actor.send(row.event as unknown as PaymentEvent),
    value: () => actor.getSnapshot().value,
    stop() {
      actor.stop();
      inspector.stop();
    },
    target: () => (frame ? frame.contentWindow : inspector.adapter.targetWindow),
  };
  for (const row of rows) session.send(row);
  return session;
}

let session: Session | null = null;

// Only the inspector in use may announce itself: @statelyai/inspect's adapters listen to every window
// message, so a stale one would otherwise answer the other's "connected" by replaying to it.
window.addEventListener(
  'message',
  (event) => {
    if ((event.data as { type?: unknown } | null)?.type !== CONNECTED || event.source === window) return;
    if (!session || event.source !== session.target()) event.stopImmediatePropagation();
  },
  true,
);

function setStatus(): void {
  const body = document.body;
  const value = session?.value();
  const matches = rows.length === 0 || canonical(value) === canonical(stored);
  body.dataset.replayed = String(rows.length);
  body.dataset.match = matches ? 'yes' : 'no';
  const live = body.dataset.live === 'yes' ? 'following live' : 'not connected to the live journal (retrying)';
  byId('status').textContent =
    `${rows.length} event${rows.length === 1 ? '' : 's'} replayed, ${live}. ` +
    (matches ? 'The replay ends where the engine stored the payment.' : `The replay ends in ${stateText(value as StateValue)}, the engine stored ${stateText(stored as StateValue)}: the machine changed since?`);
  byId('status').className = matches ? '' : 'problem';
}

function addRow(row: JournalRow): void {
  if (row.seq <= lastSeq) return;
  rows.push(row);
  lastSeq = row.seq;
  session?.send(row);
  byId('journal').append(journalItem(row));
  stored = row.to_state;
  byId('summary').textContent = stateText(row.to_state);
  setStatus();
}

async function start(): Promise<void> {
  showError('');
  let answer: JournalAnswer;
  try {
    answer = (await (await api(paymentPath(paymentId, '/journal'))).json()) as JournalAnswer;
  } catch (error) {
    if (error instanceof Unauthorized) return withToken(() => void start(), error.message);
    showError((error as Error).message);
    return;
  }
  const { payment } = answer;
  session ??= startSession(byId<HTMLIFrameElement>('inspector'));
  for (const row of answer.journal) addRow(row);
  stored = payment.state_value;
  byId('summary').textContent = stateText(payment.state_value) + (payment.review_reason ? ` (${payment.review_reason})` : '');
  setStatus();
  followJournal(paymentId, {
    after: () => lastSeq,
    onRow: addRow,
    onLive(live) {
      document.body.dataset.live = live ? 'yes' : 'no';
      setStatus();
    },
    onUnauthorized: () => withToken(() => void start(), 'The admin token is not valid.'),
  });
}

byId('payment').textContent = paymentId;
byId<HTMLAnchorElement>('statechart-link').href = paymentPath(paymentId, '/statechart');
byId('popup').onclick = () => {
  // window.open must run in the click itself, or the browser blocks it; the frame's inspector is retired.
  session?.stop();
  byId('inspector').remove();
  byId('frame-note').hidden = false;
  session = startSession(null);
};
withToken(() => void start());

/** A copy with every Telegram invite link (https://t.me/+...) replaced by a placeholder. */
function hideInviteLinks<T>(value: T): T {
  return JSON.parse(JSON.stringify(value), (_key, v: unknown) => (typeof v === 'string' && /^https:\/\/t\.me\/\+/.test(v) ? 'https://t.me/+(hidden)' : v)) as T;
}
