import { resolve } from 'node:path';
import pg from 'pg';
import type { Config } from '../config.js';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from './embedded-postgres.js';

export interface Database {
  url: string;
  pool: pg.Pool;
  embedded: boolean;
  close(): Promise<void>;
}

export function createPool(url: string, max: number, onConnectionError: (error: Error) => void = () => {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, application_name: 'telepay' });
  // An idle client that errors (server restart) must not crash the process; the next checkout reconnects.
  pool.on('error', (error) => onConnectionError(error));
  // pg-pool listens for errors only while a client is idle. A client checked out with pool.connect()
  // (a transaction: inTransaction, applyEvent's writeWithJobs, pg-boss sends through our client) whose
  // connection drops emits 'error' with nobody listening, which is an uncaught exception: the process
  // dies. This listener stays for the client's life; the query in flight still rejects (so the request
  // or job fails and is retried) and pg-pool discards the dead client on release.
  pool.on('connect', (client) => {
    client.on('error', (error) => onConnectionError(error));
  });
  return pool;
}

// SQLSTATE classes and codes (https://www.postgresql.org/docs/current/errcodes-appendix.html) and the
// errors node-postgres raises itself when a connection cannot be had or is lost.
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', '57P01', '57P02', '57P03', '53300']);
const UNREACHABLE_MESSAGES = /Connection terminated|Connection ended|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed and is not queryable|Cannot use a pool after calling end/i;

const codeOf = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
};

/**
 * The database cannot be reached or dropped the connection (refused, admin shutdown, class 08, too many
 * connections, pool checkout timeout): nothing is wrong with the request, trying again later can succeed.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e: unknown = error, hops = 0; e && hops < 5; e = (e as { cause?: unknown }).cause, hops++) {
    const code = codeOf(e);
    if (code && (UNREACHABLE_CODES.has(code) || code.startsWith('08'))) return true;
    if (e instanceof AggregateError && e.errors.some((inner) => isDatabaseUnavailable(inner))) return true;
    if (e instanceof Error && UNREACHABLE_MESSAGES.test(e.message)) return true;
  }
  return false;
}

// Data exceptions a value causes: text Postgres cannot hold (22021, 22P05), a cast or a JSON literal it
// refuses (22P02, 22P05 also covers \u0000 in jsonb), a number or date out of range (22003, 22008, 22007),
// a value longer than its column (22001), an index row too large (54000). The same value fails the same
// way every time: retrying is pointless.
const DATA_CODES = new Set(['22001', '22003', '22007', '22008', '22021', '22P02', '22P05', '2200N', '22030', '22032', '54000']);

/** Postgres refused a value itself (see DATA_CODES): a property of the input, not of the moment. */
export function isDataError(error: unknown): boolean {
  const code = codeOf(error);
  return code !== undefined && DATA_CODES.has(code);
}

/** DATABASE_URL when given; otherwise an embedded Postgres kept under EMBEDDED_PG_DIR between runs. */
export async function openDatabase(config: Config, log: (message: string) => void): Promise<Database> {
  let embedded: EmbeddedPostgresHandle | null = null;
  let url = config.DATABASE_URL;
  if (!url) {
    const dir = resolve(config.EMBEDDED_PG_DIR);
    log(`DATABASE_URL not set: starting embedded Postgres in ${dir} on port ${config.EMBEDDED_PG_PORT}`);
    embedded = await startEmbeddedPostgres({ dir, port: config.EMBEDDED_PG_PORT, persistent: true, say: log });
    url = embedded.url;
  }
  const pool = createPool(url, config.DB_POOL_MAX, (error) => log(`database connection error (the query in flight fails and is retried; the pool reconnects): ${error.message}`));
  return {
    url,
    pool,
    embedded: embedded !== null,
    async close() {
      await pool.end();
      await embedded?.stop();
    },
  };
}
