import { benchEngine } from './engine.bench.js';
import { benchIpn, benchStatusReads, startIpnBenchService } from './ipn.bench.js';
import { fmt, openBenchDatabase } from './support.js';

// `npm run bench`: every figure is printed beside a limit measured in the same run on the same database.
const log = (line: string) => process.stdout.write(`${line}\n`);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);

const db = await openBenchDatabase();
try {
  log(`TelePay Engine benchmarks (${process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded Postgres'}, ${SECONDS}s per measurement)`);
  log('');
  log('applyEvent vs the raw Postgres limit for one transition (BEGIN; UPDATE jsonb; INSERT journal; COMMIT):');
  const engine = await benchEngine(db.url, log);
  const rawAt = (clients: number) => engine.rows.find((r) => r.clients === clients)?.rawTps ?? NaN;

  log('');
  log('IPN ingest over HTTP (signed, each a new payment: store delivery, create machine, journal, route job):');
  const service = await startIpnBenchService(db.url);
  const clientsList = engine.rows.map((r) => r.clients);
  try {
    for (const clients of clientsList) {
      const r = await benchIpn({ url: service.url, ipnSecret: service.ipnSecret, clients, seconds: SECONDS });
      log(`  ${String(clients).padStart(2)} clients   ${fmt(r.rps).padStart(6)} IPN/s   p50 ${fmt(r.p50Ms, 1)} ms  p99 ${fmt(r.p99Ms, 1)} ms   ${fmt(r.rps / rawAt(clients), 2)}x raw   failures ${r.failures}`);
    }
    log('');
    log('status reads over HTTP (GET /api/payment-status, pure reads):');
    for (const clients of clientsList) {
      const r = await benchStatusReads({ url: service.url, orderId: service.orderId, token: service.token, clients, seconds: SECONDS });
      log(`  ${String(clients).padStart(2)} clients   ${fmt(r.rps).padStart(6)} reads/s  p50 ${fmt(r.p50Ms, 1)} ms  p99 ${fmt(r.p99Ms, 1)} ms   ${fmt(r.rps / rawAt(clients), 2)}x raw transition   failures ${r.failures}`);
    }
  } finally {
    await service.close();
  }

  const at8 = engine.rows.find((r) => r.clients === 8);
  log('');
  if (at8) log(`target: applyEvent >= 0.5x raw at 8 clients -> ${fmt(at8.ratio, 2)}x ${at8.ratio >= 0.5 ? 'MET' : 'NOT MET'}`);
  const quiet = !engine.duplicate.rowsWritten && engine.duplicate.walBytes < engine.duplicate.count; // < 1 byte per duplicate
  log(`target: duplicates answered without a write -> ${quiet ? 'MET' : 'NOT MET'} (no row changed: ${!engine.duplicate.rowsWritten}; ${engine.duplicate.walBytes} WAL bytes for ${engine.duplicate.count} duplicates)`);
} finally {
  await db.close();
}
