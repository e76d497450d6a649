import { createStore } from '@xstate/store';
import type { Logger } from 'pino';
import { startListener, type Listener } from '../persistence/listener.js';

// Journal rows as they commit, for the operators' live pages. Migration 011 makes every journal insert
// NOTIFY channel payment_journal with '<payment_id>:<seq>' (sent at commit, never for a rollback). The
// feed LISTENs on the process's one LISTEN connection (src/persistence/listener.ts, shared with pg-boss),
// which reconnects with backoff when it is lost and is closed on shutdown.
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

/**
 * The process's shared LISTEN connection (the service), or a connection string for a feed with a
 * connection of its own (tests, tools), reconnecting after retryDelayMs, doubling up to maxRetryDelayMs.
 */
export type JournalFeedOptions = { log: Logger } & ({ listener: Listener } | { connectionString: string; retryDelayMs?: number; maxRetryDelayMs?: number });

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
  const store = createJournalStore();
  const taps = tapStore(store, log);
  // The service passes the process's one LISTEN connection; given none (tests, tools), the feed opens its own.
  const owned = !('listener' in options);
  const listener =
    'listener' in options
      ? options.listener
      : startListener({ connectionString: options.connectionString, log, applicationName: 'telepay-journal-feed', retryDelayMs: options.retryDelayMs, maxRetryDelayMs: options.maxRetryDelayMs });
  let markReady!: () => void;
  const readyPromise = new Promise<void>((resolve) => (markReady = resolve));

  const subscription = listener.listen(
    JOURNAL_CHANNEL,
    (payload) => {
      const parsed = parseNotification(payload);
      if (!parsed) return;
      store.trigger.committed(parsed);
      taps.notify(parsed.paymentId, parsed.seq);
    },
    () => {
      store.trigger.connected();
      markReady();
    },
    () => store.trigger.disconnected(),
  );

  return {
    store,
    watch: watchStore(store),
    tap: taps.tap,
    ready: () => readyPromise,
    async close() {
      await (await subscription.catch(() => null))?.close();
      store.trigger.disconnected();
      if (owned) await listener.close();
    },
  };
}
