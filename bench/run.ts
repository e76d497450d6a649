import { benchEngine } from './engine.bench.js';
import { fmt } from './support.js';
import { openBenchDatabase } from './support.js';

// `npm run bench`: every figure is printed beside a limit measured in the same run on the same database.
const log = (line: string) => process.stdout.write(`${line}\n`);

const db = await openBenchDatabase();
try {
  log(`TelePay Engine benchmarks (${process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded Postgres'}, ${process.env.BENCH_SECONDS ?? 3}s per measurement)`);
  log('');
  log('applyEvent vs the raw Postgres limit for one transition (BEGIN; UPDATE jsonb; INSERT journal; COMMIT):');
  const engine = await benchEngine(db.url, log);
  const at8 = engine.rows.find((r) => r.clients === 8)!;
  log('');
  log(`target: applyEvent >= 0.5x raw at 8 clients -> ${fmt(at8.ratio, 2)}x ${at8.ratio >= 0.5 ? 'MET' : 'NOT MET'}`);
  const quiet = !engine.duplicate.rowsWritten && engine.duplicate.walBytes < engine.duplicate.count; // < 1 byte per duplicate
  log(`target: duplicates answered without a write -> ${quiet ? 'MET' : 'NOT MET'} (no row changed: ${!engine.duplicate.rowsWritten}; ${engine.duplicate.walBytes} WAL bytes for ${engine.duplicate.count} duplicates)`);
} finally {
  await db.close();
}
