import { readdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import pg from 'pg';

// What a window of work cost, read from the outside so it measures any version of the service alike:
// - Postgres transactions: pg_stat_database xact_commit + xact_rollback of the bench database;
// - client statements: pg_stat_statements `calls` of that database (top-level statements, so foreign-key
//   checks and other statements run inside functions are not counted); null when the extension is not loaded;
// - Postgres CPU: utime + stime from /proc of the cluster's postmaster and its children (backends,
//   checkpointer, WAL writer, autovacuum, I/O workers...), plus the postmaster's cutime + cstime, which
//   hold the CPU of children that exited meanwhile;
// - service CPU: the service process's utime + stime (every thread: event loop, libuv pool, GC);
// - the bench process's own CPU (load generator and fakes), and the whole machine's busy CPU from
//   /proc/stat, so a saturated or shared machine shows;
// - WAL bytes (pg_current_wal_insert_lsn), transaction ids handed out (writing transactions), and rows
//   inserted/updated/deleted per schema (pg_stat_user_tables: `public` = the service's tables, `pgboss`);
// - jobs created per queue (pgboss.job, by created_on in the window).
//
// Postgres flushes a backend's table and database counters up to 10 s after it goes idle, so settle()
// waits for queued jobs to finish and then for that flush before a snapshot is read. CPU, WAL, xids and
// pg_stat_statements are read live.

const CLOCK_TICK_MS = 10; // USER_HZ is 100 on Linux (getconf CLK_TCK)
const FLUSH_MS = Number(process.env.BENCH_STATS_FLUSH_MS ?? 10_500);

export interface CostSnapshot {
  at: number;
  dbTime: string;
  xacts: number;
  statements: number | null;
  walBytes: number;
  walLsn: string;
  xid: number;
  pgTicks: number | null;
  serviceTicks: number | null;
  benchCpuUs: number;
  machine: { busy: number; total: number } | null;
  appRows: number;
  /** appRows by table. */
  appTables: Record<string, number>;
  bossRows: number;
  /** The meter's own queries on the bench database so far (subtracted from the figures). */
  own: number;
}

export interface Costs {
  seconds: number;
  /** The part of the window the load ran (the rest is the drain and settle()'s quiet wait). */
  loadSeconds: number;
  /** The window on the database's clock (timestamptz text). */
  from: string;
  to: string;
  xacts: number;
  statements: number | null;
  walBytes: number;
  /** Transaction ids handed out in the whole cluster: transactions that wrote something. */
  writingXacts: number;
  pgCpuMs: number | null;
  serviceCpuMs: number | null;
  benchCpuMs: number;
  /**
   * CPU in cores (2 = both cores busy) while the load ran, i.e. without the quiet settle() at the end:
   * Postgres, the service, this process, and the whole machine (/proc/stat; the rest is other programs).
   */
  cores: { pg: number | null; service: number | null; bench: number; machine: number | null };
  /** Rows inserted, updated or deleted in the service's own tables (schema public). */
  appRows: number;
  /** The tables of appRows that changed, with their counts (to say who wrote when nothing should have). */
  appTables: Record<string, number>;
  /** The same in pg-boss's schema (jobs, and its own bookkeeping). */
  bossRows: number;
  jobsByQueue: Record<string, number>;
  /** The largest kinds of WAL record in the window, bytes each (pg_walinspect; empty without it). */
  walByRecord: Array<{ record: string; bytes: number }>;
}

/** utime, stime, cutime, cstime and ppid of a process (fields 14-17 and 4 of /proc/<pid>/stat). */
async function procStat(pid: number | string): Promise<{ ppid: number; own: number; children: number } | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), own: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  } catch {
    return null;
  }
}

/** CPU ticks of a process and everything it has reaped, or null when it is gone / not visible. */
export async function processTicks(pid: number): Promise<number | null> {
  const s = await procStat(pid);
  return s ? s.own + s.children : null;
}

/** CPU ticks of a Postgres cluster: the postmaster (with its reaped children) plus its live children. */
export async function clusterTicks(postmasterPid: number): Promise<number | null> {
  const postmaster = await procStat(postmasterPid);
  if (!postmaster) return null;
  let ticks = postmaster.own + postmaster.children;
  const entries = await readdir('/proc');
  const children = await Promise.all(entries.filter((e) => /^\d+$/.test(e)).map((e) => procStat(e)));
  for (const child of children) if (child && child.ppid === postmasterPid) ticks += child.own + child.children;
  return ticks;
}

async function machineTicks(): Promise<{ busy: number; total: number } | null> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
    const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    return { busy: total - v[3]! - v[4]!, total };
  } catch {
    return null;
  }
}

export interface MeterOptions {
  /** Superuser URL on the cluster (its `postgres` database): the meter's own queries stay out of the bench database's figures. */
  adminUrl: string;
  /** The bench database, where the service runs. */
  dbUrl: string;
  dbName: string;
  postmasterPid: number | null;
  servicePid: number | null;
  statements: boolean;
  walInspect: boolean;
}

export interface Meter {
  snapshot(): Promise<CostSnapshot>;
  /** `loadEnd`: a snapshot taken when the load stopped (before settling), for the busy-cores figures. */
  diff(from: CostSnapshot, to: CostSnapshot, loadEnd?: CostSnapshot): Promise<Costs>;
  /** Waits until no job is queued or running (bounded), then for Postgres to flush its counters. */
  settle(maxMs?: number): Promise<void>;
  /** snapshot → run → settle → snapshot → diff. */
  measure<T>(run: () => Promise<T>): Promise<{ result: T; costs: Costs }>;
  close(): Promise<void>;
}

export async function createMeter(options: MeterOptions): Promise<Meter> {
  const admin = new pg.Client({ connectionString: options.adminUrl });
  const bench = new pg.Client({ connectionString: options.dbUrl });
  await admin.connect();
  await bench.connect();
  // Every query the meter itself runs on the bench database, so its own statements and transactions are taken out.
  let own = 0;
  const onBench = <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => {
    own++;
    return bench.query<R>(text, values);
  };

  async function snapshot(): Promise<CostSnapshot> {
    // The bench database first, then the shared counters, so this snapshot's own query is among those counted.
    const tables = await onBench<{ schema: string; relname: string; rows: string }>(
      `SELECT schemaname AS schema, relname, (n_tup_ins + n_tup_upd + n_tup_del)::text AS rows FROM pg_stat_user_tables`,
    );
    const [shared, pgTicks, serviceTicks, machine] = await Promise.all([
      admin.query<{ xacts: string; wal: string; lsn: string; xid: string; statements: string | null; now: string }>(
        `SELECT (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1)::text AS xacts,
                pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::text AS wal,
                pg_current_wal_insert_lsn()::text AS lsn,
                pg_snapshot_xmax(pg_current_snapshot())::text AS xid,
                ${options.statements ? '(SELECT sum(calls) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1))::text' : 'NULL'} AS statements,
                clock_timestamp()::text AS now`,
        [options.dbName],
      ),
      options.postmasterPid ? clusterTicks(options.postmasterPid) : Promise.resolve(null),
      options.servicePid ? processTicks(options.servicePid) : Promise.resolve(null),
      machineTicks(),
    ]);
    const cpu = process.cpuUsage();
    const row = shared.rows[0]!;
    const rowsOf = (schema: string) => tables.rows.filter((r) => r.schema === schema).reduce((n, r) => n + Number(r.rows), 0);
    const appTables = Object.fromEntries(tables.rows.filter((r) => r.schema === 'public').map((r) => [r.relname, Number(r.rows)]));
    return {
      at: performance.now(),
      dbTime: row.now,
      xacts: Number(row.xacts),
      statements: row.statements === null ? null : Number(row.statements),
      walBytes: Number(row.wal),
      walLsn: row.lsn,
      xid: Number(row.xid),
      pgTicks,
      serviceTicks,
      benchCpuUs: cpu.user + cpu.system,
      machine,
      appRows: rowsOf('public'),
      appTables,
      bossRows: rowsOf('pgboss'),
      own,
    };
  }

  async function diff(a: CostSnapshot, b: CostSnapshot, loadEnd: CostSnapshot = b): Promise<Costs> {
    const seconds = (b.at - a.at) / 1000;
    let jobsByQueue: Record<string, number> = {};
    try {
      const { rows } = await onBench<{ name: string; n: number }>(
        `SELECT name, count(*)::int AS n FROM pgboss.job WHERE created_on >= $1::timestamptz AND created_on < $2::timestamptz GROUP BY name ORDER BY name`,
        [a.dbTime, b.dbTime],
      );
      jobsByQueue = Object.fromEntries(rows.map((r) => [r.name, r.n]));
    } catch {
      // no pg-boss schema (yet)
    }
    let walByRecord: Costs['walByRecord'] = [];
    if (options.walInspect) {
      try {
        const { rows } = await admin.query<{ record: string; bytes: string }>(
          `SELECT "resource_manager/record_type" AS record, combined_size::text AS bytes
             FROM pg_get_wal_stats($1::pg_lsn, least($2::pg_lsn, pg_current_wal_flush_lsn()), true)
            WHERE count > 0 ORDER BY combined_size DESC LIMIT 4`,
          [a.walLsn, b.walLsn],
        );
        walByRecord = rows.map((r) => ({ record: r.record, bytes: Number(r.bytes) }));
      } catch {
        // WAL already recycled, or not flushed yet
      }
    }
    const ticks = (x: number | null, y: number | null) => (x === null || y === null ? null : (y - x) * CLOCK_TICK_MS);
    const m = loadEnd;
    const loadSeconds = Math.max(0.001, (m.at - a.at) / 1000);
    const coresOf = (ms: number | null) => (ms === null ? null : ms / 1000 / loadSeconds);
    const cores = {
      pg: coresOf(ticks(a.pgTicks, m.pgTicks)),
      service: coresOf(ticks(a.serviceTicks, m.serviceTicks)),
      bench: (m.benchCpuUs - a.benchCpuUs) / 1000 / 1000 / loadSeconds,
      machine: a.machine && m.machine && m.machine.total > a.machine.total ? ((m.machine.busy - a.machine.busy) / (m.machine.total - a.machine.total)) * cpuCount() : null,
    };
    const ownQueries = b.own - a.own;
    return {
      seconds,
      loadSeconds,
      from: a.dbTime,
      to: b.dbTime,
      xacts: b.xacts - a.xacts - ownQueries,
      statements: a.statements === null || b.statements === null ? null : b.statements - a.statements - ownQueries,
      walBytes: b.walBytes - a.walBytes,
      writingXacts: b.xid - a.xid,
      pgCpuMs: ticks(a.pgTicks, b.pgTicks),
      serviceCpuMs: ticks(a.serviceTicks, b.serviceTicks),
      benchCpuMs: (b.benchCpuUs - a.benchCpuUs) / 1000,
      cores,
      appRows: b.appRows - a.appRows,
      appTables: Object.fromEntries(Object.entries(b.appTables).map(([t, n]) => [t, n - (a.appTables[t] ?? 0)]).filter(([, n]) => n !== 0)),
      bossRows: b.bossRows - a.bossRows,
      jobsByQueue,
      walByRecord,
    };
  }

  async function settle(maxMs = 60_000): Promise<void> {
    const deadline = performance.now() + maxMs;
    while (performance.now() < deadline) {
      let pending: number;
      try {
        const { rows } = await onBench<{ n: number }>(`SELECT count(*)::int AS n FROM pgboss.job WHERE state IN ('created', 'retry', 'active') AND start_after <= now()`);
        pending = rows[0]!.n;
      } catch {
        pending = 0; // no pg-boss schema: nothing can be queued
      }
      if (pending === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // A backend flushes its table and database counters at most once a second while busy; what is left
    // when it goes idle is flushed by a timer up to 10 s later (PGSTAT_IDLE_INTERVAL). Waiting that out is
    // the price of exact transaction and row counts (BENCH_STATS_FLUSH_MS trades it for speed).
    await new Promise((r) => setTimeout(r, FLUSH_MS));
  }

  return {
    snapshot,
    diff,
    settle,
    async measure(run) {
      const before = await snapshot();
      const result = await run();
      const loadEnd = await snapshot();
      await settle();
      const after = await snapshot();
      return { result, costs: await diff(before, after, loadEnd) };
    },
    async close() {
      await admin.end().catch(() => {});
      await bench.end().catch(() => {});
    },
  };
}

const cpuCount = () => availableParallelism();

/**
 * The window without what the idle service spends (pg-boss polling and bookkeeping, measured in an idle
 * window) during the quiet wait after the load: that wait is the bench's, not the work's. The
 * background while the load runs stays in: it is part of what the service costs at that rate.
 */
export function withoutSettle(c: Costs, idle: Costs): Costs {
  const quiet = Math.max(0, c.seconds - c.loadSeconds);
  const f = quiet / idle.seconds;
  // Never below zero: the idle rate is an estimate, and a quiet window may have had less background than it.
  const minus = (x: number | null, y: number | null) => (x === null || y === null ? x : Math.max(0, x - y * f));
  return {
    ...c,
    xacts: minus(c.xacts, idle.xacts)!,
    statements: minus(c.statements, idle.statements),
    walBytes: minus(c.walBytes, idle.walBytes)!,
    writingXacts: minus(c.writingXacts, idle.writingXacts)!,
    pgCpuMs: minus(c.pgCpuMs, idle.pgCpuMs),
    serviceCpuMs: minus(c.serviceCpuMs, idle.serviceCpuMs),
    benchCpuMs: minus(c.benchCpuMs, idle.benchCpuMs)!,
    bossRows: minus(c.bossRows, idle.bossRows)!,
  };
}

/** Per-unit figures of a window (per payment, per request). */
export function perUnit(c: Costs, units: number) {
  const per = (x: number | null) => (x === null || units === 0 ? null : x / units);
  return {
    xacts: per(c.xacts),
    writingXacts: per(c.writingXacts),
    statements: per(c.statements),
    pgCpuMs: per(c.pgCpuMs),
    serviceCpuMs: per(c.serviceCpuMs),
    walBytes: per(c.walBytes),
    appRows: per(c.appRows),
    bossRows: per(c.bossRows),
  };
}
