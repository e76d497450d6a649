import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from './embedded-postgres.js';

// Throwaway Postgres for tests and benchmarks: the server at DATABASE_URL when set, otherwise an
// embedded cluster in a temporary directory on a free port; databases are created and dropped on it.

export interface ScratchServer {
  adminUrl: string;
  close(): Promise<void>;
}

export interface ScratchDatabase {
  url: string;
  drop(): Promise<void>;
}

/** The same server, another database. */
export function databaseUrl(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** A TCP port free on loopback right now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export async function openScratchServer(prefix: string): Promise<ScratchServer> {
  if (process.env.DATABASE_URL) return { adminUrl: process.env.DATABASE_URL, close: async () => {} };
  const dir = await mkdtemp(join(tmpdir(), `${prefix}-pg-`));
  const embedded = await startEmbeddedPostgres({ dir, port: await freePort(), persistent: false });
  return {
    adminUrl: embedded.url,
    async close() {
      await embedded.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** (Re)creates database `name` on the server, empty or as a copy of `template`. */
export async function createScratchDatabase(adminUrl: string, name: string, options: { template?: string; replace?: boolean } = {}): Promise<ScratchDatabase> {
  const run = async (sql: string) => {
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      await admin.query(sql);
    } finally {
      await admin.end();
    }
  };
  if (options.replace) await run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await run(`CREATE DATABASE ${name}${options.template ? ` TEMPLATE ${options.template}` : ''}`);
  return { url: databaseUrl(adminUrl, name), drop: () => run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}
