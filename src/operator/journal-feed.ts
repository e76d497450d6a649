import { createStore } from '@xstate/store';
import pg from 'pg';
import type { Logger } from 'pino';

// Journal rows as they commit, for the operators' live pages. Migration 011 makes every journal insert
// NOTIFY channel payment_journal with '<payment_id>:<seq>' (sent at commit, never for a rollback). One
// dedicated connection LISTENs for the whole process (a pg.Client, not a pool client: LISTEN belongs to
// its session), reconnects with backoff when it is lost, and is closed on shutdown.
//
// The fan-out is an @xstate/store: its context holds, for each payment somebody watches, the newest
// seq heard of, and a generation bumped on every (re)connect. A watcher selects its own payment's slice,
// so it is called only when that slice changes: when a row of its payment committed, or after a
// reconnect (notifications sent while the connection was down are lost, so every watcher reads again).
// A watcher reads the rows itself (seq > the last it sent): a notification is a hint, never the data,
// so a lost or merged notification can delay a row but never lose or reorder it.
//
// tap() is the other way in: it hears every notification, of every payment, as it arrives, and every
// change of the connection. The buyer's status cache uses it to drop answers a commit outdated (and
// everything when notifications may have been lost); nothing is kept in the store for it.

export const JOURNAL_CHANNEL = 'payment_journal';

interface FeedContext {
  /** Newest seq heard of, for watched payments only (nothing is kept for payments nobody watches). */
  latest: Record<string, number>;
  /** How many watchers each payment has. */
  watchers: Record<string, number>;
  /** Bumped on every (re)connect of the LISTEN connection. */
  generation: number;
  listening: boolean;
}

export function createJournalStore() {
  return createStore({
    context: { latest: {}, watchers: {}, generation: 0, listening: false } as FeedContext,
    on: {
      watched: (context, event: { paymentId: string }) => ({
        ...context,
        watchers: { ...context.watchers, [event.paymentId]: (context.watchers[event.paymentId] ?? 0) + 1 },
      }),
      unwatched: (context, event: { paymentId: string }) => {
        const left = (context.watchers[event.paymentId] ?? 1) - 1;
        const watchers = { ...context.watchers };
        const latest = { ...context.latest };
        if (left > 0) watchers[event.paymentId] = left;
        else {
          delete watchers[event.paymentId];
          delete latest[event.paymentId];
        }
        return { ...context, watchers, latest };
      },
      committed: (context, event: { paymentId: string; seq: number }) => {
        if (!context.watchers[event.paymentId] || (context.latest[event.paymentId] ?? 0) >= event.seq) return context;
        return { ...context, latest: { ...context.latest, [event.paymentId]: event.seq } };
      },
      connected: (context) => ({ ...context, listening: true, generation: context.generation + 1 }),
      disconnected: (context) => (context.listening ? { ...context, listening: false } : context),
    },
  });
}

export type JournalStore = ReturnType<typeof createJournalStore>;

/** '<payment_id>:<seq>' (payment ids may themselves contain ':'; the seq is after the last one). */
export function parseNotification(payload: string | undefined): { paymentId: string; seq: number } | null {
  if (!payload) return null;
  const colon = payload.lastIndexOf(':');
  const seq = Number(payload.slice(colon + 1));
  if (colon <= 0 || !Number.isSafeInteger(seq) || seq < 1) return null;
  return { paymentId: payload.slice(0, colon), seq };
}

export interface JournalWatch {
  /**
   * Calls onChange whenever a journal row of this payment may have committed (a notification, or a
   * reconnect of the feed). Returns the function that stops watching.
   */
  watch(paymentId: string, onChange: () => void): () => void;
  /**
   * Hears every notification, of every payment (watched or not), and every change of the LISTEN
   * connection; present on the real feed. For in-process caches that must drop what a committed row
   * may have changed (the buyer's status answers).
   */
  tap?(listener: JournalTapListener): () => void;
}

/** The LISTEN connection as a cache must see it: while not listening, notifications are being lost. */
export interface FeedConnection {
  listening: boolean;
  /** Bumped on every (re)connect: notifications sent before it may never have been heard. */
  generation: number;
}

export interface JournalTapListener {
  /** A journal row of this payment committed; called synchronously as the notification arrives, in arrival order. */
  committed(paymentId: string, seq: number): void;
  /** Called once at once with the connection as it is, then on every change of it. */
  connection(state: FeedConnection): void;
}

export interface JournalFeed extends JournalWatch {
  readonly store: JournalStore;
  tap(listener: JournalTapListener): () => void;
  /** Resolves once the first LISTEN is in place (tests; the service does not wait for it). */
  ready(): Promise<void>;
  close(): Promise<void>;
}

export interface JournalFeedOptions {
  connectionString: string;
  log: Logger;
  /** First reconnect delay; doubles up to maxRetryDelayMs. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
}

export function watchStore(store: JournalStore): JournalWatch['watch'] {
  return (paymentId, onChange) => {
    store.trigger.watched({ paymentId });
    const selection = store.select((context) => `${context.generation}:${context.latest[paymentId] ?? 0}`);
    const subscription = selection.subscribe(() => onChange());
    let stopped = false;
    return () => {
      if (stopped) return;
      stopped = true;
      subscription.unsubscribe();
      store.trigger.unwatched({ paymentId });
    };
  };
}

/**
 * tap() over a store and the notifications its feed hears: `notify` is what the feed calls for every
 * notification (after the store heard it); the connection is the store's own listening/generation.
 */
export function tapStore(store: JournalStore, log: Logger): { tap: NonNullable<JournalWatch['tap']>; notify(paymentId: string, seq: number): void } {
  const listeners = new Set<JournalTapListener>();
  const connection = store.select((context) => `${context.listening}:${context.generation}`);
  const stateOf = (): FeedConnection => {
    const { listening, generation } = store.getSnapshot().context;
    return { listening, generation };
  };
  // A listener that throws must neither stop the others nor reach the pg client emitting the notification.
  const safely = (call: () => void) => {
    try {
      call();
    } catch (error) {
      log.error({ err: error }, 'journal feed: a tap listener failed');
    }
  };
  return {
    tap(listener) {
      listeners.add(listener);
      const subscription = connection.subscribe(() => {
        const state = stateOf();
        safely(() => listener.connection(state));
      });
      safely(() => listener.connection(stateOf()));
      return () => {
        listeners.delete(listener);
        subscription.unsubscribe();
      };
    },
    notify(paymentId, seq) {
      for (const listener of listeners) safely(() => listener.committed(paymentId, seq));
    },
  };
}

export function startJournalFeed(options: JournalFeedOptions): JournalFeed {
  const { log } = options;
  const baseDelay = options.retryDelayMs ?? 250;
  const maxDelay = options.maxRetryDelayMs ?? 10_000;
  const store = createJournalStore();
  const taps = tapStore(store, log);
  let client: pg.Client | null = null;
  let closed = false;
  let retry: NodeJS.Timeout | null = null;
  let failures = 0;
  let markReady!: () => void;
  const readyPromise = new Promise<void>((resolve) => (markReady = resolve));

  const connect = async () => {
    retry = null;
    if (closed) return;
    const c = new pg.Client({ connectionString: options.connectionString, application_name: 'telepay-journal-feed' });
    client = c;
    let lost = false;
    const onLost = (error: Error) => {
      if (lost) return;
      lost = true;
      if (client === c) client = null;
      store.trigger.disconnected();
      c.end().catch(() => {});
      if (closed) return;
      const delay = Math.min(maxDelay, baseDelay * 2 ** failures++);
      log.warn({ err: error, retryInMs: delay }, 'journal feed: the LISTEN connection failed; reconnecting (live operator pages catch up then)');
      retry = setTimeout(() => void connect(), delay);
      retry.unref();
    };
    c.on('error', onLost);
    c.on('end', () => onLost(new Error('the LISTEN connection ended')));
    c.on('notification', (message) => {
      if (message.channel !== JOURNAL_CHANNEL) return;
      const parsed = parseNotification(message.payload);
      if (!parsed) return;
      store.trigger.committed(parsed);
      taps.notify(parsed.paymentId, parsed.seq);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${JOURNAL_CHANNEL}`);
    } catch (error) {
      onLost(error as Error);
      return;
    }
    if (lost || closed) return;
    failures = 0;
    store.trigger.connected();
    markReady();
  };
  void connect();

  return {
    store,
    watch: watchStore(store),
    tap: taps.tap,
    ready: () => readyPromise,
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      const c = client;
      client = null;
      store.trigger.disconnected();
      await c?.end().catch(() => {});
    },
  };
}
