import { benchEngine } from './engine.bench.js';
import { benchInviteLatency } from './invite-latency.bench.js';
import { benchIpn, benchStatusReads, startIpnBenchService } from './ipn.bench.js';
import { benchPayouts, describePayouts } from './payouts.bench.js';
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

  log('');
  const rate = Number(process.env.BENCH_INVITE_RATE ?? 100);
  log(`end to end: signed IPN -> route job -> invite job -> invite message at the fake Bot API, steady ${rate} payments/s:`);
  const invite = await benchInviteLatency(db.url, log, { rate });
  log(`  p50 ${fmt(invite.p50Ms, 0)} ms  p99 ${fmt(invite.p99Ms, 0)} ms  max ${fmt(invite.maxMs, 0)} ms; ${invite.sent}/${invite.payments} invites sent; IPNs left at ${fmt(invite.achievedRate, 1)}/s`);
  log(`  medians: IPN->routed ${fmt(invite.stages.ipnToRouted, 0)} ms, routed->invited ${fmt(invite.stages.routedToInvited, 0)} ms; route job wait ${fmt(invite.stages.routeJob.waitMs, 0)} ms run ${fmt(invite.stages.routeJob.runMs, 0)} ms; invite job wait ${fmt(invite.stages.inviteJob.waitMs, 0)} ms run ${fmt(invite.stages.inviteJob.runMs, 0)} ms`);
  log(`  process CPU ${fmt(invite.processCpu, 2)} cores (service, fakes and load generator share one Node process); SELECT 1 on a side connection: ${fmt(invite.selectOneMs, 1)} ms`);

  // A lower steady rate beside it shows the latency of the path itself when no backlog forms.
  const calmRate = Number(process.env.BENCH_INVITE_CALM_RATE ?? 20);
  const calm = await benchInviteLatency(db.url, () => {}, { rate: calmRate, seconds: 5 });
  log(`  reference at ${calmRate}/s: p50 ${fmt(calm.p50Ms, 0)} ms  p99 ${fmt(calm.p99Ms, 0)} ms; ${calm.sent}/${calm.payments} invites sent`);

  log('');
  const payoutCount = Number(process.env.BENCH_PAYOUTS ?? 100);
  log(`payouts through the whole path on the local EVM chain (${payoutCount} paid payments released at once; raw = transitions/s at 8 clients):`);
  const raw8 = rawAt(8);
  log(describePayouts('to ETH owners (direct send)', await benchPayouts(db.url, { count: payoutCount, currency: 'eth' }), raw8));
  log(describePayouts('to USDT owners (ChangeNow swap)', await benchPayouts(db.url, { count: payoutCount, currency: 'usdt' }), raw8));

  const at8 = engine.rows.find((r) => r.clients === 8);
  log('');
  log(`target: invite p50 <= 100 ms and p99 <= 500 ms at ${rate}/s -> ${invite.p50Ms <= 100 && invite.p99Ms <= 500 && invite.sent === invite.payments ? 'MET' : 'NOT MET'}`);
  if (at8) log(`target: applyEvent >= 0.5x raw at 8 clients -> ${fmt(at8.ratio, 2)}x ${at8.ratio >= 0.5 ? 'MET' : 'NOT MET'}`);
  const quiet = !engine.duplicate.rowsWritten && engine.duplicate.walBytes < engine.duplicate.count; // < 1 byte per duplicate
  log(`target: duplicates answered without a write -> ${quiet ? 'MET' : 'NOT MET'} (no row changed: ${!engine.duplicate.rowsWritten}; ${engine.duplicate.walBytes} WAL bytes for ${engine.duplicate.count} duplicates)`);
} finally {
  await db.close();
}
