import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../src/persistence/embedded-postgres.js';

// Benchmarks run on the same kind of database as the service: DATABASE_URL when set, otherwise a
// throwaway embedded cluster. Each run gets its own database so figures never include old data.

export interface BenchDatabase {
  url: string;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export async function openBenchDatabase(): Promise<BenchDatabase> {
  let adminUrl = process.env.DATABASE_URL;
  let stop: (() => Promise<void>) | null = null;
  let dir: string | null = null;
  if (!adminUrl) {
    dir = await mkdtemp(join(tmpdir(), 'telepay-bench-pg-'));
    const embedded = await startEmbeddedPostgres({ dir, port: await freePort(), persistent: false });
    adminUrl = embedded.url;
    stop = embedded.stop;
  }
  const name = `telepay_bench_${process.pid}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async close() {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await admin.end();
      await stop?.();
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `op` from `clients` concurrent loops for `seconds` (bounded), returning operations per second. */
export async function measure(clients: number, seconds: number, op: (client: number, i: number) => Promise<void>): Promise<{ opsPerSecond: number; ops: number }> {
  const deadline = performance.now() + seconds * 1000;
  let ops = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let i = 0; performance.now() < deadline; i++) {
        await op(client, i);
        ops++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  return { opsPerSecond: ops / elapsed, ops };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
