import { createServer, connect as tcpConnect, type AddressInfo, type Socket } from 'node:net';
import pg from 'pg';
import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../src/logger.js';
import { startJournalFeed, type FeedConnection, type JournalFeed } from '../src/operator/journal-feed.js';
import { LISTENER_APPLICATION_NAME, startListener, type Listener } from '../src/persistence/listener.js';
import { createBoss, queueOf } from '../src/persistence/queues.js';
import { startFakeNowPayments } from '../src/sandbox/nowpayments.fake.js';
import { startSandboxPayouts } from '../src/sandbox/sandbox-payouts.js';
import { startFakeTelegram } from '../src/sandbox/telegram.fake.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { startTestService } from './support/service.js';

// One LISTEN connection per process (src/persistence/listener.ts), shared by pg-boss's workers and the
// journal feed: Postgres wakes every listening backend of the database on every NOTIFY. Which client ran
// LISTEN is seen in-process (pg_listening_channels() answers only for the session asking); every wait is
// on the event itself, bounded by a deadline far below the workers' 600 s polling, so a pick-up within
// it can only be a notification or the listener's reconnect.

const log = createLogger('silent');
const DEADLINE_MS = 15_000;

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${DEADLINE_MS} ms`)), DEADLINE_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Records every LISTEN any pg client of this process runs (pg-boss's own listener included): backend pid -> channels. */
function recordListens() {
  const spy = vi.spyOn(pg.Client.prototype, 'query');
  return {
    byBackend() {
      const backends = new Map<number, string[]>();
      spy.mock.calls.forEach((args, i) => {
        const first = args[0] as unknown;
        const text = typeof first === 'string' ? first : ((first as { text?: string } | undefined)?.text ?? '');
        const listen = /^\s*LISTEN\s+"((?:[^"]|"")+)"/i.exec(text);
        if (!listen) return;
        const pid = (spy.mock.contexts[i] as unknown as { processID: number }).processID;
        backends.set(pid, [...(backends.get(pid) ?? []), listen[1]!.replaceAll('""', '"')]);
      });
      return backends;
    },
    restore: () => spy.mockRestore(),
  };
}

async function backendsNamed(db: TestDatabase, applicationName: string): Promise<number[]> {
  const { rows } = await db.pool.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [applicationName]);
  return rows.map((r) => r.pid);
}

/** A TCP pass-through to Postgres that a test can shut (new connections refused) or freeze (bytes stop, sockets stay open). */
async function startProxy(url: string) {
  const target = new URL(url);
  const pairs = new Set<[Socket, Socket]>();
  let open = true;
  const server = createServer((socket) => {
    if (!open) return void socket.destroy();
    const upstream = tcpConnect(Number(target.port || 5432), target.hostname);
    const pair: [Socket, Socket] = [socket, upstream];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      socket.destroy();
      upstream.destroy();
    };
    for (const s of pair) s.on('error', drop).on('close', drop);
    socket.pipe(upstream).pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const via = new URL(url);
  via.hostname = '127.0.0.1';
  via.port = String((server.address() as AddressInfo).port);
  return {
    url: via.toString(),
    shut: () => void (open = false),
    reopen: () => void (open = true),
    freeze() {
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    async close() {
      for (const [a, b] of pairs) [a, b].forEach((s) => s.destroy());
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('the shared LISTEN connection with pg-boss and the journal feed', () => {
  const QUEUE = queueOf('invite'); // notify-enabled, from the template
  let db: TestDatabase;
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  let listener: Listener;
  let boss: PgBoss;
  let feed: JournalFeed;
  let listens: ReturnType<typeof recordListens>;
  const waiting = new Map<string, () => void>();
  /** Resolves when the worker takes the job tagged so (call before sending it). */
  const pickedUp = (tag: string) => new Promise<void>((resolve) => waiting.set(tag, resolve));
  const connection = (predicate: (c: FeedConnection) => boolean) =>
    new Promise<FeedConnection>((resolve) => {
      const untap = feed.tap({ committed: () => {}, connection: (c) => predicate(c) && (untap?.(), resolve(c)) });
    });

  beforeAll(async () => {
    listens = recordListens();
    db = await createTestDatabase();
    proxy = await startProxy(db.url);
    listener = startListener({ connectionString: proxy.url, log, retryDelayMs: 10, maxRetryDelayMs: 50 });
    boss = createBoss(db.url, { max: 2, schedule: false, supervise: false, listener });
    boss.on('error', () => {});
    await boss.start();
    feed = startJournalFeed({ listener, log });
    await feed.ready();
    // Polling every 600 s: within the deadline only a notification (or the reconnect's force-fetch) wakes it.
    await boss.work<{ tag: string }>(QUEUE, { pollingIntervalSeconds: 600, notifyPollingIntervalSeconds: 600 }, async ([job]) => {
      waiting.get(job!.data.tag)?.();
    });
    // The fence: the first job may be taken by the worker's first fetch; once it is, the worker sleeps.
    const first = pickedUp('first');
    await boss.send(QUEUE, { tag: 'first' });
    await within(first, 'the first job');
  });
  afterAll(async () => {
    listens.restore();
    await boss?.stop({ graceful: false, close: true });
    await feed?.close();
    await listener?.close();
    await proxy?.close();
    await db?.drop();
  });

  it("pg-boss LISTENs on the shared connection: one backend listens, on pg-boss's channel and the journal's", async () => {
    const backends = listens.byBackend();
    expect(backends.size).toBe(1);
    const [pid, channels] = [...backends][0]!;
    expect(channels).toEqual(expect.arrayContaining(['payment_journal', expect.stringMatching(/^pgboss_/)]));
    expect(await backendsNamed(db, LISTENER_APPLICATION_NAME)).toEqual([pid]);
  });

  it("a job sent to a notify-enabled queue wakes the sleeping worker through the shared connection's notification", async () => {
    const job = pickedUp('woken');
    await boss.send(QUEUE, { tag: 'woken' });
    await within(job, 'the job sent while the worker sleeps');
    expect(listens.byBackend().size).toBe(1);
  });

  it("the shared connection killed: it reconnects, the journal feed's generation moves on, and pg-boss's onReconnect takes the job sent while it was down", async () => {
    const before = feed.store.getSnapshot().context.generation;
    const [pid] = await backendsNamed(db, LISTENER_APPLICATION_NAME);
    const lost = connection((c) => !c.listening);
    proxy.shut(); // it stays down until the job is in
    await db.pool.query('SELECT pg_terminate_backend($1)', [pid]);
    await within(lost, 'the feed hearing the connection lost');

    const job = pickedUp('sent-while-down'); // its NOTIFY reaches nobody
    await boss.send(QUEUE, { tag: 'sent-while-down' });
    const back = connection((c) => c.listening && c.generation > before);
    proxy.reopen();
    expect(await within(back, 'the feed hearing the reconnect')).toEqual({ listening: true, generation: before + 1 });
    await within(job, "the job sent while the connection was down (pg-boss's force-fetch on reconnect)");

    const [again] = await backendsNamed(db, LISTENER_APPLICATION_NAME);
    expect(again).not.toBe(pid);
    // pg-boss's channel was LISTENed again on the new connection, and nothing else listens.
    expect(listens.byBackend().get(again!)).toEqual(expect.arrayContaining(['payment_journal', expect.stringMatching(/^pgboss_/)]));
    const woken = pickedUp('after-reconnect');
    await boss.send(QUEUE, { tag: 'after-reconnect' });
    await within(woken, 'a job sent after the reconnect');
  });
});

describe('the listener on its own', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('a connection gone silent (no error, no end) fails its heartbeat and is replaced; the channel is heard again', async () => {
    const proxy = await startProxy(db.url);
    const listener = startListener({ connectionString: proxy.url, log, applicationName: 'telepay-listener-heartbeat', heartbeatMs: 300, retryDelayMs: 10, maxRetryDelayMs: 50 });
    try {
      let connects = 0;
      let onConnect = () => {};
      let onLost = () => {};
      let onPayload = (_payload?: string) => {};
      const next = <T,>(set: (resolve: (value: T) => void) => void) => new Promise<T>((resolve) => set(resolve));
      const first = next<void>((resolve) => (onConnect = resolve));
      await listener.listen(
        'heartbeat_test',
        (payload) => onPayload(payload),
        () => (connects++, onConnect()),
        () => onLost(),
      );
      await within(first, 'the first LISTEN');
      const [pid] = await backendsNamed(db, 'telepay-listener-heartbeat');

      const lost = next<void>((resolve) => (onLost = resolve));
      const again = next<void>((resolve) => (onConnect = resolve));
      proxy.freeze();
      await within(lost, 'the heartbeat noticing the silent connection');
      await within(again, 'the reconnect');
      expect(connects).toBe(2);
      // A new backend; the frozen one lingers on the server until its socket dies: it was never told.
      expect((await backendsNamed(db, 'telepay-listener-heartbeat')).filter((p) => p !== pid)).toHaveLength(1);

      const heard = next<string | undefined>((resolve) => (onPayload = resolve));
      await db.pool.query(`SELECT pg_notify('heartbeat_test', 'after')`);
      expect(await within(heard, 'a notification on the new connection')).toBe('after');
    } finally {
      await listener.close();
      await proxy.close();
    }
  });

  it('subscribers of one channel share its LISTEN; one that throws does not keep the notification from the others', async () => {
    const listener = startListener({ connectionString: db.url, log, applicationName: 'telepay-listener-subscribers' });
    const listens = recordListens();
    try {
      const thrower = await listener.listen('shared_test', () => {
        throw new Error('a failing subscriber');
      });
      let heard!: (payload?: string) => void;
      const received = new Promise<string | undefined>((resolve) => (heard = resolve));
      await listener.listen('shared_test', (payload) => heard(payload));
      await listener.ready();
      await db.pool.query(`SELECT pg_notify('shared_test', 'both')`);
      expect(await within(received, 'the notification')).toBe('both');
      expect([...listens.byBackend().values()].flat().filter((c) => c === 'shared_test')).toHaveLength(1);
      await thrower.close();
    } finally {
      listens.restore();
      await listener.close();
    }
  });
});

describe('a started service', () => {
  /** The service's LISTENs, once it started (pg-boss's start waits for its LISTEN; the journal feed's is sent as it starts). */
  async function startedListens(env: Record<string, string>) {
    const listens = recordListens();
    try {
      const t = await startTestService(env, { effects: [] });
      return { t, backends: listens.byBackend() };
    } finally {
      listens.restore();
    }
  }

  it('ROLE=all holds one LISTEN connection, for pg-boss and the journal feed; pg-boss opens none of its own', async () => {
    const { t, backends } = await startedListens({});
    try {
      expect(backends.size).toBe(1);
      const [pid, channels] = [...backends][0]!;
      expect(channels.sort()).toEqual(['payment_journal', expect.stringMatching(/^pgboss_/)]);
      expect(await backendsNamed(t.db, LISTENER_APPLICATION_NAME)).toEqual([pid]);
    } finally {
      await t.close();
    }
  });

  it("ROLE=worker holds one LISTEN connection, on pg-boss's channel only: nobody there reads the journal feed", async () => {
    // A worker refuses the in-process sandbox fakes: stand-ins for every provider, as scale-out runs them.
    const np = await startFakeNowPayments({ apiKey: 'k', ipnSecret: 's' });
    const tg = await startFakeTelegram({ token: '1:worker-token' });
    const payouts = await startSandboxPayouts();
    try {
      const { t, backends } = await startedListens({
        ROLE: 'worker',
        NOWPAYMENTS_API_URL: np.url,
        NOWPAYMENTS_API_KEY: 'k',
        NOWPAYMENTS_IPN_SECRET: 's',
        TELEGRAM_BOT_TOKEN: tg.token,
        TELEGRAM_API_ROOT: tg.apiRoot,
        CHANGENOW_API_URL: payouts.changeNow.baseUrl,
        CHANGENOW_API_KEY: payouts.changeNow.apiKey,
        ETH_RPC_URL: payouts.chain.rpcUrl,
        HOST_WALLET_PRIVATE_KEY: payouts.hostPrivateKey,
      });
      try {
        expect([...backends.values()]).toEqual([[expect.stringMatching(/^pgboss_/)]]);
        expect(await backendsNamed(t.db, LISTENER_APPLICATION_NAME)).toEqual([...backends.keys()]);
      } finally {
        await t.close();
      }
    } finally {
      await payouts.stop();
      await tg.close();
      await np.close();
    }
  });
});
