import { LRUCache } from 'lru-cache';
import type { FeedConnection, JournalTapListener } from '../operator/journal-feed.js';

// An in-process cache of the buyer's status answers, keyed by order id, kept correct by the journal
// feed: every journal insert NOTIFYs '<payment_id>:<seq>' at commit, and a payment's row changes only
// together with a journal row. So an answer can be served from memory until a notification says that
// one of the order's payments moved; the poll that follows reads the database again.
//
// The rules that keep it from ever serving an answer older than the notification that outdated it:
//
// - Only while the feed is listening. Notifications sent while the LISTEN connection is down are lost
//   for good, so a disconnect and every reconnect (a new generation) drop everything, and nothing read
//   in a generation is stored in another.
// - No lost invalidation. A read that misses takes a flight ticket before its SELECT; a notification
//   for the order (or one that could be for any order) marks the tickets in flight stale, and a stale
//   ticket's answer is returned to its caller but never stored: its SELECT may have run before the commit.
// - Payments are mapped to orders exactly. A notification names a payment, the cache is keyed by order:
//   a payment known to belong to an order (from an answer, or looked up once) invalidates that order;
//   a payment not known yet (the first IPN of an order creates it, a child payment, an order id set
//   later) may belong to any cached order, so until its order has been looked up no answer is served
//   from memory at all, and every read in flight is stale. A payment's order never changes once set
//   (the engine only ever fills a NULL one), so the mapping is kept; one with no order yet is asked again.
// - Bounded: at most maxEntries answers (least recently used dropped first), each for at most
//   maxAgeMs: the backstop for the few facts no notification covers (a channel's or plan's title).
//   What else is not covered is never stored: the caller decides per answer (`cacheable`).

export interface StatusCacheOptions {
  /** Which order each payment belongs to (absent: none, or no such payment). One query for many payments. */
  ordersOf(paymentIds: string[]): Promise<Map<string, string>>;
  maxEntries?: number;
  maxAgeMs?: number;
  /** How many payment -> order pairs are remembered (a forgotten one is looked up again). */
  maxPayments?: number;
  onError?(error: unknown): void;
  now?: () => number;
}

export interface Loaded<T> {
  value: T;
  /** The payment the answer was read from (it belongs to the order), or null. */
  paymentId: string | null;
  /** False for an answer that depends on something a notification would not announce. */
  cacheable: boolean;
}

export interface StatusCacheStats {
  hits: number;
  misses: number;
  stored: number;
  /** Misses whose answer was not stored because a notification (or a reconnect) came while they were in flight. */
  staleFlights: number;
  invalidations: number;
  lookups: number;
  clears: number;
}

export interface StatusCache<T> extends JournalTapListener {
  /** The cached answer, or what `load` reads (stored if nothing outdated it meanwhile). */
  read(key: string, load: () => Promise<Loaded<T> | null>): Promise<T | null>;
  /** The cached answer if one may be served now (no read). */
  peek(key: string): T | undefined;
  readonly size: number;
  readonly stats: StatusCacheStats;
  /** Resolves once no payment's order is being looked up (tests). */
  settled(): Promise<void>;
  clear(): void;
}

interface Entry<T> {
  value: T;
  storedAt: number;
}

interface Flight {
  key: string;
  stale: boolean;
}

const LOOKUP_BATCH = 500;

export function createStatusCache<T>(options: StatusCacheOptions): StatusCache<T> {
  const maxEntries = options.maxEntries ?? 10_000;
  const maxAgeMs = options.maxAgeMs ?? 3_000;
  const maxPayments = options.maxPayments ?? 100_000;
  const now = options.now ?? Date.now;
  // Least recently used dropped first; the age is checked against the injected clock (storedAt).
  const entries = new LRUCache<string, Entry<T>>({ max: maxEntries });
  /** payment id -> order id, only ever for a payment whose order is set (it never changes then). */
  const orderOfPayment = new LRUCache<string, string>({ max: maxPayments });
  const flights = new Map<string, Set<Flight>>();
  let listening = false;
  let generation = 0;
  /** Payments heard of whose order is not known yet. While any is, no answer is served from memory. */
  const unknown = new Set<string>();
  /** Unknown payments notified again while a lookup ran: the row just heard of may be the one that set their order. */
  const requeued = new Set<string>();
  let lookingUp = 0;
  let idle: Array<() => void> = [];
  const stats: StatusCacheStats = { hits: 0, misses: 0, stored: 0, staleFlights: 0, invalidations: 0, lookups: 0, clears: 0 };

  const staleAll = () => {
    for (const set of flights.values()) for (const flight of set) flight.stale = true;
  };
  const clear = () => {
    stats.clears++;
    entries.clear();
    staleAll();
  };
  const invalidate = (key: string) => {
    stats.invalidations++;
    entries.delete(key);
    const set = flights.get(key);
    if (set) for (const flight of set) flight.stale = true;
  };
  const remember = (paymentId: string, orderId: string) => {
    if (!orderOfPayment.has(paymentId)) orderOfPayment.set(paymentId, orderId);
  };

  const lookUp = async () => {
    if (lookingUp > 0 || unknown.size === 0) return;
    const batch = [...unknown].slice(0, LOOKUP_BATCH);
    lookingUp = batch.length;
    stats.lookups++;
    try {
      const orders = await options.ordersOf(batch);
      for (const paymentId of batch) {
        const orderId = orders.get(paymentId);
        if (orderId === undefined) continue;
        remember(paymentId, orderId);
        invalidate(orderId);
      }
    } catch (error) {
      // Which orders moved is unknown: forget every answer instead.
      options.onError?.(error);
      clear();
    } finally {
      // A payment heard of again while its lookup ran stays unknown: its new row may have set its order.
      for (const paymentId of batch) if (!requeued.delete(paymentId)) unknown.delete(paymentId);
      lookingUp = 0;
      if (unknown.size > 0) void lookUp();
      else {
        const waiting = idle;
        idle = [];
        for (const resolve of waiting) resolve();
      }
    }
  };
  const servable = () => listening && unknown.size === 0;

  const peek = (key: string): T | undefined => {
    if (!servable()) return undefined;
    const entry = entries.get(key);
    if (!entry) return undefined;
    if (now() - entry.storedAt > maxAgeMs) {
      entries.delete(key);
      return undefined;
    }
    return entry.value;
  };

  return {
    get size() {
      return entries.size;
    },
    stats,
    peek,
    clear,

    async read(key, load) {
      const cached = peek(key);
      if (cached !== undefined) {
        stats.hits++;
        return cached;
      }
      stats.misses++;
      // Taken before the SELECT is sent: whatever commits after this point is either in the SELECT's
      // snapshot or announced to this flight by a notification that arrives before the answer is stored.
      const flight: Flight = { key, stale: !listening };
      const startedAt = now();
      let set = flights.get(key);
      if (!set) flights.set(key, (set = new Set()));
      set.add(flight);
      try {
        const loaded = await load();
        if (!loaded) return null;
        if (loaded.paymentId !== null) remember(loaded.paymentId, key);
        if (!loaded.cacheable) return loaded.value;
        if (flight.stale || !listening) {
          stats.staleFlights++;
          return loaded.value;
        }
        entries.set(key, { value: loaded.value, storedAt: startedAt });
        stats.stored++;
        return loaded.value;
      } finally {
        set.delete(flight);
        if (set.size === 0 && flights.get(key) === set) flights.delete(key);
      }
    },

    committed(paymentId) {
      if (!listening) return; // nothing is cached, and every flight is stale already
      const orderId = orderOfPayment.get(paymentId);
      if (orderId !== undefined) {
        invalidate(orderId);
        return;
      }
      // Which order it belongs to is not known: any answer, cached or in flight, may be outdated.
      staleAll();
      // With nothing cached there is nothing it could have outdated (the reads in flight are stale now):
      // no lookup, so a process nobody polls (or a burst of new payments before anyone does) pays nothing.
      if (entries.size === 0 && unknown.size === 0) return;
      if (unknown.has(paymentId)) {
        if (lookingUp > 0) requeued.add(paymentId);
        return;
      }
      unknown.add(paymentId);
      void lookUp();
    },

    connection(state: FeedConnection) {
      if (!state.listening || state.generation !== generation || !listening) clear();
      listening = state.listening;
      generation = state.generation;
    },

    settled() {
      if (unknown.size === 0 && lookingUp === 0) return Promise.resolve();
      return new Promise((resolve) => idle.push(resolve));
    },
  };
}
