import { createDatabase, openBenchCluster, type BenchCluster } from './postgres.js';

// Benchmarks run on the same kind of database as the service: DATABASE_URL when set, otherwise a
// throwaway embedded cluster started by the bench (bench/postgres.ts). Each run gets its own database
// so figures never include old data.

export interface BenchDatabase {
  url: string;
  cluster: BenchCluster;
  close(): Promise<void>;
}

export async function openBenchDatabase(): Promise<BenchDatabase> {
  const cluster = await openBenchCluster();
  try {
    const db = await createDatabase(cluster.adminUrl, `telepay_bench_${process.pid}`);
    return {
      url: db.url,
      cluster,
      async close() {
        await db.drop();
        await cluster.close();
      },
    };
  } catch (error) {
    await cluster.close();
    throw error;
  }
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
