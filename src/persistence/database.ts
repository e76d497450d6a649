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

export function createPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, application_name: 'telepay' });
  // An idle client that errors (server restart) must not crash the process; the next checkout reconnects.
  pool.on('error', () => {});
  return pool;
}

/** DATABASE_URL when given; otherwise an embedded Postgres kept under EMBEDDED_PG_DIR between runs. */
export async function openDatabase(config: Config, log: (message: string) => void): Promise<Database> {
  let embedded: EmbeddedPostgresHandle | null = null;
  let url = config.DATABASE_URL;
  if (!url) {
    const dir = resolve(config.EMBEDDED_PG_DIR);
    log(`DATABASE_URL not set: starting embedded Postgres in ${dir} on port ${config.EMBEDDED_PG_PORT}`);
    embedded = await startEmbeddedPostgres({ dir, port: config.EMBEDDED_PG_PORT, persistent: true });
    url = embedded.url;
  }
  const pool = createPool(url, config.DB_POOL_MAX);
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
