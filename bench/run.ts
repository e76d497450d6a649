import { fmt, openBenchDatabase } from './support.js';

// `npm run bench`: every figure is printed beside a limit measured in the same run on the same database.
// Sections run alone by name: `npm run bench -- e2e` or `BENCH_ONLY=e2e npm run bench` (comma-separated:
// engine, e2e, payouts, threshold). Each section is imported only when it runs, so a section whose imports an older
// commit of src/ lacks does not stop the others (bench/e2e.bench.ts uses only main.ts, the env, the fakes
// and the HTTP API).
const log = (line: string) => process.stdout.write(`${line}\n`);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const SECTIONS = ['engine', 'e2e', 'payouts', 'threshold'] as const;
type Section = (typeof SECTIONS)[number];

const asked = (process.argv.slice(2).filter((a) => a !== '--').join(',') || process.env.BENCH_ONLY || '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const unknown = asked.filter((s) => !(SECTIONS as readonly string[]).includes(s));
if (unknown.length) {
  process.stderr.write(`unknown bench section ${unknown.join(', ')}: choose from ${SECTIONS.join(', ')}\n`);
  process.exit(2);
}
const runs = (section: Section) => asked.length === 0 || asked.includes(section);
const targets: Array<{ name: string; met: boolean | null; value: string }> = [];

const db = await openBenchDatabase();
try {
  log(`TelePay Engine benchmarks (${db.cluster.label}, ${SECONDS}s per measurement${asked.length ? `; sections: ${asked.join(', ')}` : ''})`);

  if (runs('engine')) {
    const { benchEngine } = await import('./engine.bench.js');
    log('');
    log('applyEvent vs the raw Postgres limit for one transition (BEGIN; UPDATE jsonb; INSERT journal; COMMIT), in process:');
    const engine = await benchEngine(db.url, log);
    const at8 = engine.rows.find((r) => r.clients === 8);
    if (at8) targets.push({ name: 'applyEvent >= 0.5x raw at 8 clients', met: at8.ratio >= 0.5, value: `${fmt(at8.ratio, 2)}x` });
    const quiet = !engine.duplicate.rowsWritten && engine.duplicate.walBytes < engine.duplicate.count; // < 1 byte per duplicate
    targets.push({ name: 'duplicate events answered without a write', met: quiet, value: `no row changed: ${!engine.duplicate.rowsWritten}; ${engine.duplicate.walBytes} WAL bytes for ${engine.duplicate.count} duplicates` });
  }

  if (runs('e2e')) {
    const { benchE2e } = await import('./e2e.bench.js');
    const { e2eTargets, printE2e } = await import('./e2e-report.js');
    log('');
    log('end to end: the service in its own process (node --import tsx src/main.ts); fakes and load generator in this one; loopback:');
    const report = await benchE2e(db, log);
    printE2e(report, log);
    targets.push(...e2eTargets(report));
  }

  if (runs('payouts')) {
    const { benchPayouts, describePayouts } = await import('./payouts.bench.js');
    const { prepareRawLimit } = await import('./raw-limit.js');
    log('');
    const payoutCount = Number(process.env.BENCH_PAYOUTS ?? 100);
    const raw = await prepareRawLimit(db.url, 8);
    const raw8 = await raw.run(8, SECONDS);
    await raw.close();
    log(`payouts through the whole path on the local EVM chain (${payoutCount} paid payments released at once; raw = ${fmt(raw8)} transitions/s at 8 clients, measured now):`);
    log(describePayouts('to ETH owners (direct send)', await benchPayouts(db.url, { count: payoutCount, currency: 'eth' }), raw8));
    log(describePayouts('to USDT owners (ChangeNow swap)', await benchPayouts(db.url, { count: payoutCount, currency: 'usdt' }), raw8));
  }

  if (runs('threshold')) {
    const { benchThresholdCheck, describeThresholdCheck } = await import('./threshold.bench.js');
    log('');
    log("the threshold check (the channel's claim lock; its running total + the credits since) vs migration 017's (the lock; every open credit summed), one connection:");
    log(describeThresholdCheck(await benchThresholdCheck(db.url)));
  }

  if (targets.length) {
    log('');
    for (const t of targets) log(`target: ${t.name} -> ${t.met === null ? 'NOT MEASURED' : t.met ? 'MET' : 'NOT MET'} (${t.value})`);
  }
} finally {
  await db.close();
}
