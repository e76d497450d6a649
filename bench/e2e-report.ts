import { perUnit, type Costs } from './costs.js';
import { e2eOptionsFromEnv, type E2eOptions, type E2eReport, type IntakeRow } from './e2e.bench.js';
import { fmt } from './support.js';

// The end-to-end section's report (bench/e2e.bench.ts measures): one table for the payments, one for
// intake, and the issue's targets as MET / NOT MET.

const num = (x: number | null | undefined, digits = 0) => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : fmt(x, digits));
const col = (s: string, n: number) => ` ${s.padStart(n)}`;
/** The width of the intake table's first column. */
const LABEL = 50;
/** "N service rows written", naming the tables when there are any. */
const written = (c: Costs) => `${fmt(c.appRows)} service rows written${c.appRows === 0 ? '' : ` (${Object.entries(c.appTables).map(([t, n]) => `${t} ${fmt(n)}`).join(', ')})`}`;
/** The largest kinds of WAL record, per unit (pg_walinspect). */
const walText = (c: Costs, units: number) =>
  c.walByRecord.length ? c.walByRecord.map((w) => `${w.record} ${fmt(w.bytes / Math.max(1, units))} B`).join(', ') : 'n/a (no pg_walinspect)';

/**
 * Service + Postgres CPU per request of `row` / per new IPN (the ingest row's cost window); `marginal`
 * takes out what the idle service spends meanwhile (pg-boss polling). null when a figure is missing.
 */
function cpuRatio(report: E2eReport, row: IntakeRow, marginal: boolean): number | null {
  const ingest = report.intake?.ingest;
  const idle = report.idle;
  if (!ingest || idle.pgCpuMs === null || idle.serviceCpuMs === null) return null;
  const idleCpuPerSecond = (idle.pgCpuMs + idle.serviceCpuMs) / idle.seconds;
  const cpu = (r: IntakeRow) => {
    const c = r.costs;
    if (c.pgCpuMs === null || c.serviceCpuMs === null) return null;
    return (c.pgCpuMs + c.serviceCpuMs - (marginal ? idleCpuPerSecond * c.loadSeconds : 0)) / Math.max(1, r.ops);
  };
  const n = cpu(ingest);
  const d = cpu(row);
  return n === null || d === null ? null : d / n;
}

/** A duplicate row's cost beside a new IPN's, its writes and its WAL, in words. */
const duplicateCost = (report: E2eReport, row: IntakeRow) =>
  `${num(cpuRatio(report, row, true), 2)}x service + Postgres CPU per request beyond the idle service's (${num(cpuRatio(report, row, false), 2)}x with it); ${written(row.costs)}; ${fmt(row.costs.walBytes / Math.max(1, row.ops), 1)} WAL B/req (pg-boss bookkeeping meanwhile: ${fmt(row.costs.bossRows)} rows)`;

export function printE2e(report: E2eReport, log: (line: string) => void, options: E2eOptions = e2eOptionsFromEnv()): void {
  const idle = report.idle;
  const perSec = (x: number | null) => (x === null ? null : x / idle.seconds);
  log(`  sources: ${report.sources}`);
  log(`  idle service (2 s, nothing sent): ${num(perSec(idle.xacts), 1)} xacts/s, ${num(perSec(idle.statements), 1)} statements/s, Postgres CPU ${num(perSec(idle.pgCpuMs), 1)} ms/s, service CPU ${num(perSec(idle.serviceCpuMs), 1)} ms/s, WAL ${num(perSec(idle.walBytes))} B/s (pg-boss polling and bookkeeping; part of every window below)`);
  if (report.rows.length) {
    log('');
    log('  4 IPNs per payment -> DM      pay/s  DMs/payments     p50     p99     max | xacts  stmts  PG CPU svc CPU    WAL | busy cores:  PG  svc  gen other');
    log('                                                         ms      ms      ms |  /pay   /pay  ms/pay  ms/pay KB/pay |');
    for (const r of report.rows) {
      const u = perUnit(r.costs, r.payments);
      const k = r.costs.cores;
      const other = k.machine === null ? null : k.machine - (k.pg ?? 0) - (k.service ?? 0) - k.bench;
      log(
        `  ${r.label.padEnd(28)}${col(num(r.perSecond, 1), 6)}${col(`${r.delivered}/${r.payments}`, 13)}${col(num(r.p50Ms), 7)}${col(num(r.p99Ms), 7)}${col(num(r.maxMs), 7)} |` +
          `${col(num(u.xacts, 1), 5)}${col(num(u.statements, 1), 6)}${col(num(u.pgCpuMs, 2), 7)}${col(num(u.serviceCpuMs, 2), 7)}${col(num(u.walBytes === null ? null : u.walBytes / 1024, 1), 6)} |` +
          `${col(num(k.pg, 2), 15)}${col(num(k.service, 2), 4)}${col(num(k.bench, 2), 4)}${col(num(other, 2), 5)}`,
      );
    }
    for (const r of report.rows) {
      const jobs = Object.entries(r.costs.jobsByQueue).map(([q, n]) => `${q} ${fmt(n / r.payments, 2)}`).join(', ');
      const u = perUnit(r.costs, r.payments);
      log(`  ${r.label}: finished IPN answered in ${num(r.finishedAnswerMs)} ms (median); IPN answers not 200: ${r.ipnFailures || 'none'}; writing xacts ${num(u.writingXacts, 1)}/pay; rows written/pay: service ${num(u.appRows, 1)}, pg-boss ${num(u.bossRows, 1)}; jobs/pay: ${jobs || 'none'}${r.note ? `; ${r.note}` : ''}`);
      if (r.stages) log(`    ${r.stages}`);
      log(`    WAL per payment, largest records: ${walText(r.costs, r.payments)}`);
    }
    log(`  buyers messaged more than once: ${report.duplicateDms}`);
  }
  const intake = report.intake;
  if (intake) {
    log('');
    const rows = [intake.ingest, intake.duplicate, intake.duplicateFromPeer, intake.status];
    log('  intake over HTTP                                     req/s    p50    p99  fail | xacts  stmts  PG CPU svc CPU    WAL  rows written');
    log('                                                                 ms     ms       |  /req   /req  µs/req  µs/req  B/req  service/pg-boss');
    log(`  ${`raw transition limit, ${options.ingestClients} clients`.padEnd(LABEL)}${col(num(intake.raw), 7)}                      |  BEGIN; UPDATE jsonb; INSERT journal; COMMIT`);
    for (const row of rows) {
      if (!row) continue;
      const r = row.result;
      const c = row.costs;
      const u = perUnit(c, row.ops);
      const us = (ms: number | null) => num(ms === null ? null : ms * 1000);
      log(
        `  ${row.label.padEnd(LABEL)}${col(num(r.perSecond), 7)}${col(num(r.p50Ms, 1), 6)}${col(num(r.p99Ms, 1), 6)}${col(String(r.failures), 5)} |` +
          `${col(num(u.xacts, 2), 5)}${col(num(u.statements, 2), 6)}${col(us(u.pgCpuMs), 7)}${col(us(u.serviceCpuMs), 7)}${col(num(u.walBytes), 6)}  ${fmt(c.appRows)}/${fmt(c.bossRows)}${r.firstFailure ? `  first failure: ${r.firstFailure}` : ''}`,
      );
    }
    log('  (ingest req/s: median of 3 rounds alternating with the raw limit; its costs: a separate window of new IPNs)');
    if (intake.duplicateFromPeer) log(`  (${intake.duplicateFromPeer.label}: each body sent once, ${fmt(intake.duplicateFromPeer.ops)} in all; the window ends when they run out)`);
    for (const row of rows) {
      if (!row) continue;
      const k = row.costs.cores;
      const other = k.machine === null ? null : k.machine - (k.pg ?? 0) - (k.service ?? 0) - k.bench;
      log(`  ${row.label}: busy cores PG ${num(k.pg, 2)}, svc ${num(k.service, 2)}, gen ${num(k.bench, 2)}, other ${num(other, 2)}; writing xacts ${num(perUnit(row.costs, row.ops).writingXacts, 2)}/req; jobs: ${Object.entries(row.costs.jobsByQueue).map(([q, n]) => `${q} ${n}`).join(', ') || 'none'}`);
      log(`    WAL per request, largest records: ${walText(row.costs, row.ops)}`);
    }
    // No target: how often a re-send reaches an instance that did not apply it depends on the deployment.
    const peer = intake.duplicateFromPeer;
    if (peer && intake.ingest) log(`  reported, no target: ${peer.label} -> ${duplicateCost(report, peer)}${peer.result.failures ? `; ${peer.result.failures} answers not "duplicate"` : ''}`);
  }
}

export function e2eTargets(report: E2eReport): Array<{ name: string; met: boolean | null; value: string }> {
  const out: Array<{ name: string; met: boolean | null; value: string }> = [];
  const closed = report.rows.find((r) => r.label.startsWith('closed loop'));
  if (closed) out.push({ name: '>= 100 payments/s closed loop', met: closed.perSecond >= 100, value: `${fmt(closed.perSecond, 1)}/s` });
  const at100 = report.rows.find((r) => r.label === 'open loop 100/s');
  if (at100) {
    const all = at100.delivered === at100.payments;
    out.push({ name: 'p50 <= 100 ms and p99 <= 500 ms at 100/s (every DM delivered)', met: at100.p50Ms <= 100 && at100.p99Ms <= 500 && all, value: `p50 ${num(at100.p50Ms)} ms, p99 ${num(at100.p99Ms)} ms, ${at100.delivered}/${at100.payments} DMs` });
    const u = perUnit(at100.costs, at100.payments);
    out.push({ name: '<= 12 Postgres transactions per payment (at 100/s)', met: u.xacts === null ? null : u.xacts <= 12, value: num(u.xacts, 1) });
    out.push({ name: '<= 7 ms Postgres CPU per payment (at 100/s)', met: u.pgCpuMs === null ? null : u.pgCpuMs <= 7, value: u.pgCpuMs === null ? 'n/a (Postgres not on this machine)' : `${fmt(u.pgCpuMs, 2)} ms` });
  }
  if (report.rows.length) out.push({ name: 'no buyer messaged twice', met: report.duplicateDms === 0, value: String(report.duplicateDms) });
  const intake = report.intake;
  if (intake?.ingest) {
    const ratio = intake.ingest.result.perSecond / intake.raw;
    out.push({ name: 'IPN ingest >= 0.5x the raw transition limit at 8 clients', met: ratio >= 0.5 && intake.ingest.result.failures === 0, value: `${fmt(ratio, 2)}x (${fmt(intake.ingest.result.perSecond)} vs ${fmt(intake.raw)}/s)` });
  }
  if (intake?.ingest && intake.duplicate) {
    // On the re-sends this instance remembers (it applied them); the other instance's are reported beside the intake table.
    const dup = intake.duplicate;
    const ratio = cpuRatio(report, dup, true);
    out.push({
      name: 'duplicate IPN <= 0.2x the cost of a new one, zero writes',
      met: ratio === null ? null : ratio <= 0.2 && dup.costs.appRows === 0 && dup.result.failures === 0,
      value: `${dup.label}: ${duplicateCost(report, dup)}`,
    });
  }
  if (intake?.status) {
    const s = intake.status;
    out.push({ name: 'status reads >= 5,000/s at 32 clients, zero writes', met: s.result.perSecond >= 5000 && s.costs.appRows === 0 && s.result.failures === 0, value: `${fmt(s.result.perSecond)}/s; ${written(s.costs)}` });
  }
  return out;
}
