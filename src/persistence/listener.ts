import pg from 'pg';
import type { Logger } from 'pino';

// The process's one LISTEN connection, shared by everything that listens: pg-boss's workers (woken
// when a job lands on a notify-enabled queue) and the journal feed (operators' live pages, the buyer's
// status cache). Postgres signals EVERY listening backend of the database on every NOTIFY, whatever
// its channel, and each one it wakes reads the notification queue: a second listening connection per
// process is one more backend woken per notifying commit, and one more connection. (A notifying commit
// while anyone listens also costs one transaction more, measured the same with one listener or two:
// README, "Benchmarks", sixth round.) One pg.Client (LISTEN belongs to its session, so not a pool client) LISTENs on every
// channel subscribed to. When it is lost (an error, its end, or a failed heartbeat) every subscriber
// hears onLost, and it reconnects with backoff (retryDelayMs doubling up to maxRetryDelayMs); once
// every channel is LISTENed again each subscriber's onReconnect runs: notifications sent while it was
// down are lost, so subscribers read again (pg-boss force-fetches, the journal feed's watchers re-read).
//
// The heartbeat is the one pg-boss's own listener ran: TCP keepalive alone can take long to notice a
// connection that died silently, so every heartbeatMs the connection is asked which channels it
// listens on; no answer within half of that, or a channel missing, and it is replaced.

export interface ListenHandle {
  /** Stops this subscription (UNLISTEN once nobody else listens on its channel); the connection stays. */
  close(): Promise<void>;
}

export interface Listener {
  /**
   * Subscribes to a channel. onReconnect runs once the channel is LISTENed, and again after every
   * reconnect; onLost whenever the connection is lost. Resolves once LISTENed (or the connection
   * attempt under way failed), or at once while waiting to reconnect: the reconnect LISTENs, then runs
   * onReconnect. pg-boss's Notifier calls it as its db's listen(channel, onNotification, onReconnect).
   */
  listen(channel: string, onNotification: (payload?: string) => void, onReconnect?: () => void, onLost?: () => void): Promise<ListenHandle>;
  /** Resolves once the connection first listens (tests; the service does not wait for it). */
  ready(): Promise<void>;
  close(): Promise<void>;
}

export interface ListenerOptions {
  connectionString: string;
  log: Logger;
  /** As seen in pg_stat_activity. */
  applicationName?: string;
  /** First reconnect delay; doubles up to maxRetryDelayMs. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  /** How often the connection is asked which channels it listens on (a silent drop is noticed within 1.5x this). */
  heartbeatMs?: number;
}

export const LISTENER_APPLICATION_NAME = 'telepay-listener';

interface Subscription {
  channel: string;
  onNotification: (payload?: string) => void;
  onReconnect?: () => void;
  onLost?: () => void;
}

interface Connection {
  client: pg.Client;
  /** Channels LISTENed on this connection. */
  listened: Set<string>;
  /** Connected, every subscribed channel LISTENed: subscribers have been told (onReconnect). */
  up: boolean;
  gone: boolean;
  heartbeat: NodeJS.Timeout | null;
  /** Settles once this connection listens or has failed (never rejects). */
  attempt: Promise<void>;
}

export function startListener(options: ListenerOptions): Listener {
  const { log } = options;
  const baseDelay = options.retryDelayMs ?? 250;
  const maxDelay = options.maxRetryDelayMs ?? 10_000;
  const heartbeatMs = options.heartbeatMs ?? 10_000;
  const subscriptions = new Set<Subscription>();
  let current: Connection | null = null;
  let closed = false;
  let retry: NodeJS.Timeout | null = null;
  let failures = 0;
  let markReady!: () => void;
  const readyPromise = new Promise<void>((resolve) => (markReady = resolve));

  // A subscriber that throws must neither stop the others nor reach the pg client emitting the event.
  const call = (callback: ((payload?: string) => void) | undefined, payload?: string) => {
    try {
      callback?.(payload);
    } catch (error) {
      log.error({ err: error }, 'listener: a subscriber failed');
    }
  };
  const channels = () => new Set([...subscriptions].map((s) => s.channel));
  const listenOn = async (conn: Connection, channel: string) => {
    await conn.client.query(`LISTEN ${conn.client.escapeIdentifier(channel)}`);
    conn.listened.add(channel);
  };

  const lost = (conn: Connection, error: Error) => {
    if (conn.gone) return;
    conn.gone = true;
    const wasUp = conn.up;
    conn.up = false;
    if (conn.heartbeat) clearTimeout(conn.heartbeat);
    conn.client.end().catch(() => {});
    if (current !== conn) return;
    current = null;
    if (wasUp) for (const s of [...subscriptions]) call(s.onLost);
    if (closed) return;
    const delay = Math.min(maxDelay, baseDelay * 2 ** failures++);
    log.warn({ err: error, retryInMs: delay }, 'the LISTEN connection failed; reconnecting (job workers and live pages catch up then)');
    retry = setTimeout(connect, delay);
    retry.unref();
  };

  const beat = (conn: Connection) => {
    conn.heartbeat = setTimeout(() => void check(conn), heartbeatMs).unref();
  };
  const check = async (conn: Connection) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the LISTEN connection did not answer its heartbeat')), heartbeatMs / 2).unref();
    });
    try {
      const { rows } = await Promise.race([conn.client.query<{ channel: string }>('SELECT pg_listening_channels() AS channel'), timeout]);
      const heard = new Set(rows.map((r) => r.channel));
      if ([...conn.listened].some((channel) => !heard.has(channel))) throw new Error('a LISTEN registration was lost');
    } catch (error) {
      lost(conn, error as Error);
      return;
    } finally {
      clearTimeout(timer);
    }
    if (!conn.gone) beat(conn);
  };

  const connect = () => {
    retry = null;
    if (closed) return;
    const client = new pg.Client({ connectionString: options.connectionString, application_name: options.applicationName ?? LISTENER_APPLICATION_NAME, keepAlive: true });
    const conn: Connection = { client, listened: new Set(), up: false, gone: false, heartbeat: null, attempt: Promise.resolve() };
    current = conn;
    client.on('error', (error) => lost(conn, error));
    client.on('end', () => lost(conn, new Error('the LISTEN connection ended')));
    client.on('notification', (message) => {
      for (const s of [...subscriptions]) if (s.channel === message.channel) call(s.onNotification, message.payload);
    });
    conn.attempt = (async () => {
      try {
        await client.connect();
        // Until no channel is missing: a subscriber may arrive while an earlier LISTEN is in flight.
        for (let missing = [...channels()]; missing.length > 0; missing = [...channels()].filter((c) => !conn.listened.has(c))) {
          for (const channel of missing) await listenOn(conn, channel);
        }
      } catch (error) {
        lost(conn, error as Error);
        return;
      }
      if (conn.gone || closed) return;
      conn.up = true;
      failures = 0;
      beat(conn);
      markReady();
      for (const s of [...subscriptions]) call(s.onReconnect);
    })();
  };
  connect();

  return {
    async listen(channel, onNotification, onReconnect, onLost) {
      if (closed) throw new Error('the listener is closed');
      const subscription: Subscription = { channel, onNotification, onReconnect, onLost };
      subscriptions.add(subscription);
      const conn = current;
      // A connection on its way: it LISTENs on every channel subscribed to by then, this one included,
      // and calls onReconnect (as pg-boss's own listener, its listen() resolves once listening).
      if (conn && !conn.up && !conn.gone) await conn.attempt;
      else if (conn?.up) {
        try {
          if (!conn.listened.has(channel)) await listenOn(conn, channel);
        } catch (error) {
          lost(conn, error as Error); // the reconnect LISTENs it, then calls onReconnect
        }
        if (conn.up && subscriptions.has(subscription)) call(onReconnect);
      }
      return {
        async close() {
          if (!subscriptions.delete(subscription)) return;
          const live = current;
          if (!live?.up || channels().has(channel) || !live.listened.delete(channel)) return;
          await live.client.query(`UNLISTEN ${live.client.escapeIdentifier(channel)}`).catch(() => {});
        },
      };
    },
    ready: () => readyPromise,
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      const conn = current;
      current = null;
      if (!conn) return;
      conn.gone = true;
      if (conn.heartbeat) clearTimeout(conn.heartbeat);
      if (conn.up) for (const s of [...subscriptions]) call(s.onLost);
      conn.up = false;
      await conn.client.end().catch(() => {});
    },
  };
}
