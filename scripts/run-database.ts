import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../src/persistence/embedded-postgres.js';
import { createScratchDatabase, databaseUrl, freePort } from '../src/persistence/scratch-postgres.js';

// The database of a long run (npm run chaos, npm run scaleout): a fresh scratch database on
// DATABASE_URL's server, or on a private embedded cluster in a temporary folder (the only case where the
// run may restart Postgres itself). Ctrl-C stops the run's services, then drops both.

export interface RunDatabase {
  url: string;
  /** Restarts the private cluster (same folder and port); null on DATABASE_URL's server. */
  restart: (() => Promise<void>) | null;
  close(): Promise<void>;
}

export async function openRunDatabase(label: string, name: string, options: { say: (line: string) => void; onSignal: () => void }): Promise<RunDatabase> {
  let cluster: { dir: string; port: number; handle: EmbeddedPostgresHandle } | null = null;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const dir = await mkdtemp(join(tmpdir(), `telepay-${label}-pg-`));
    const port = await freePort();
    cluster = { dir, port, handle: await startEmbeddedPostgres({ dir, port, persistent: true }) };
    adminUrl = cluster.handle.url;
    options.say(`private Postgres cluster in ${dir} on port ${port}`);
  }
  const scratch = await createScratchDatabase(adminUrl, name, { replace: true });
  const close = async () => {
    await scratch.drop().catch(() => {});
    if (cluster) {
      await cluster.handle.stop();
      await rm(cluster.dir, { recursive: true, force: true });
    }
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      options.say(`${signal}: stopping the run`);
      options.onSignal();
      void close().finally(() => process.exit(130));
    });
  }
  const own = cluster;
  return {
    url: databaseUrl(adminUrl, name),
    restart: own
      ? async () => {
          await own.handle.stop();
          await new Promise((resolve) => setTimeout(resolve, 500));
          own.handle = await startEmbeddedPostgres({ dir: own.dir, port: own.port, persistent: true });
        }
      : null,
    close,
  };
}
