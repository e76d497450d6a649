import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../src/persistence/scratch-postgres.js';
import { cleanEnv, ServiceProcess } from '../scripts/chaos.js';
import { loadConfig } from '../src/config.js';
import { configurationProblems, describeStartFailure, startupProblems, StartupError } from '../src/runtime.js';
import { ConfigError } from '../src/config.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

// `npm start` as an operator meets it: every start failure is ONE line on stderr naming the fix, exit
// code 1, no stack trace; all the configuration's problems at once; a kill -9 leaves the embedded
// Postgres running, and the next start stops it (with a log line) instead of dying; Ctrl-C (SIGINT to
// the whole process group, twice at once as `npm start` delivers it) shuts down gracefully, the
// embedded Postgres (in a group of its own) last.

const ROOT = new URL('..', import.meta.url).pathname;

function runMain(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const oneLine = (stderr: string) => {
  const lines = stderr.split('\n').filter(Boolean);
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^TelePay Engine cannot start: /);
  expect(stderr).not.toMatch(/^\s+at /m);
  return lines[0]!;
};

const PRODUCTION_SECRETS = {
  NODE_ENV: 'production',
  PUBLIC_BASE_URL: 'https://pay.example.com',
  NOWPAYMENTS_API_KEY: 'k',
  NOWPAYMENTS_IPN_SECRET: 's',
  ADMIN_TOKEN: 'a'.repeat(24),
  STATUS_TOKEN_SECRET: 'b'.repeat(32),
  TELEGRAM_BOT_TOKEN: '1:t',
  CHANGENOW_API_KEY: 'c',
  ETH_RPC_URL: 'http://127.0.0.1:8545',
  HOST_WALLET_PRIVATE_KEY: `0x${'1'.repeat(64)}`,
  DATABASE_URL: 'postgres://u@db.example.com/telepay',
};

describe('configuration checked at once (no process)', () => {
  it('production refuses to start without its secrets, and the embedded database unless allowed', () => {
    expect(startupProblems(loadConfig(PRODUCTION_SECRETS))).toEqual([]);
    for (const name of ['PUBLIC_BASE_URL', 'NOWPAYMENTS_API_KEY', 'NOWPAYMENTS_IPN_SECRET', 'ADMIN_TOKEN', 'STATUS_TOKEN_SECRET', 'TELEGRAM_BOT_TOKEN', 'ETH_RPC_URL'] as const) {
      const problems = startupProblems(loadConfig({ ...PRODUCTION_SECRETS, [name]: '' }));
      expect(problems.map((p) => p.message).join('\n'), name).toMatch(new RegExp(`^${name}.* required`, 'm'));
    }
    const embedded = startupProblems(loadConfig({ ...PRODUCTION_SECRETS, DATABASE_URL: '' }));
    expect(embedded.map((p) => p.message)).toEqual([expect.stringMatching(/^DATABASE_URL is required in production: .*ALLOW_EMBEDDED_DB_IN_PRODUCTION=true/)]);
    expect(startupProblems(loadConfig({ ...PRODUCTION_SECRETS, DATABASE_URL: '', ALLOW_EMBEDDED_DB_IN_PRODUCTION: 'true' }))).toEqual([]);
    // Outside production nothing is required: the sandbox.
    expect(startupProblems(loadConfig({}))).toEqual([]);
  });

  it('every problem together: invalid variables and the cross-field checks, none twice', () => {
    const env = { NODE_ENV: 'production', PORT: 'eighty', ADMIN_TOKEN: 'short', TELEGRAM_UPDATES: 'webhook', CHANGENOW_API_KEY: 'c' };
    let error: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = configurationProblems(error as ConfigError, env);
    const text = problems.join('\n');
    expect(text).toMatch(/^PORT: /m);
    expect(text).toMatch(/^ADMIN_TOKEN: must be at least 24 characters/m);
    expect(text).not.toMatch(/^ADMIN_TOKEN is required/m); // invalid is reported, not also "missing"
    for (const name of ['PUBLIC_BASE_URL', 'NOWPAYMENTS_API_KEY', 'NOWPAYMENTS_IPN_SECRET', 'STATUS_TOKEN_SECRET', 'TELEGRAM_BOT_TOKEN', 'TELEGRAM_WEBHOOK_SECRET', 'DATABASE_URL']) {
      expect(text, name).toMatch(new RegExp(`^${name} is required`, 'm'));
    }
    expect(text).toMatch(/^ETH_RPC_URL, HOST_WALLET_PRIVATE_KEY are required/m);
    const { line, expected } = describeStartFailure(new ConfigError(problems), null);
    expect(expected).toBe(true);
    expect(line).not.toContain('\n');
  });

  it('start failures name the fix', () => {
    const config = loadConfig({ PORT: '3456' });
    expect(describeStartFailure(Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' }), config).line).toMatch(/^port 3456 on 127\.0\.0\.1 is already in use.*set PORT/);
    expect(describeStartFailure(new StartupError(['A is required.', 'B is required.']), config)).toEqual({ line: 'A is required; B is required. See .env.example.', expected: true });
    expect(describeStartFailure(Object.assign(new Error('password authentication failed'), { code: '28P01' }), loadConfig({ DATABASE_URL: 'postgres://u:p@db:5433/x' })).line).toMatch(
      /^the database at db:5433\/x refused our login .*DATABASE_URL/,
    );
    expect(describeStartFailure(new TypeError('boom'), config)).toEqual({ line: 'unexpected error: boom', expected: false });
  });
});

describe('npm start failing', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('bad configuration in production: one line listing every problem, exit 1, no stack', async () => {
    const { code, stderr } = await runMain({ NODE_ENV: 'production', PORT: 'eighty', CHANGENOW_API_KEY: 'x' });
    expect(code).toBe(1);
    const line = oneLine(stderr);
    expect(line).toMatch(/invalid configuration: PORT: .*PUBLIC_BASE_URL is required.*ADMIN_TOKEN is required.*DATABASE_URL is required in production.*ETH_RPC_URL, HOST_WALLET_PRIVATE_KEY are required/);
  });

  it('the database unreachable: one line naming DATABASE_URL, exit 1', async () => {
    const port = await freePort();
    const { code, stderr } = await runMain({ DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/telepay`, LOG_LEVEL: 'silent' });
    expect(code).toBe(1);
    expect(oneLine(stderr)).toMatch(new RegExp(`cannot reach the database at 127\\.0\\.0\\.1:${port}/telepay \\(ECONNREFUSED\\).*DATABASE_URL`));
  });

  it('the HTTP port in use: one line naming PORT, exit 1', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const { code, stderr } = await runMain({ DATABASE_URL: db.url, PORT: String(port), LOG_LEVEL: 'silent' });
      expect(code).toBe(1);
      expect(oneLine(stderr)).toMatch(new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use.*set PORT`));
    } finally {
      blocker.close();
    }
  });
});

describe('the embedded Postgres', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'telepay-process-pg-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const groupOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[2]);
  const postmasterPid = async () => Number((await readFile(join(dir, 'postmaster.pid'), 'utf8')).split('\n')[0]);

  it('kill -9 leaves it running; the next start stops it (one log line) and starts; Ctrl-C shuts down gracefully, Postgres last', async () => {
    const env = cleanEnv({ EMBEDDED_PG_DIR: dir, EMBEDDED_PG_PORT: String(await freePort()), PORT: '0', LOG_LEVEL: 'info' });
    const log = join(dir, '..', `telepay-process-start-${process.pid}.log`);
    const first = new ServiceProcess(env, log, true);
    const second = new ServiceProcess(env, log, true);
    try {
      await first.start(90_000);
      const leftover = await postmasterPid();
      // Postgres is not in the service's process group: a terminal's Ctrl-C does not reach it.
      expect(groupOf(leftover)).not.toBe(groupOf(first.child!.pid!));
      first.kill9();
      await new Promise((r) => setTimeout(r, 300));
      expect(alive(leftover)).toBe(true);

      await second.start(90_000);
      expect(second.output).toMatch(new RegExp(`found an embedded Postgres left running by an earlier run that did not shut down \\(pid ${leftover}`));
      expect(second.output).not.toMatch(/triggerUncaughtException|cannot start/);
      expect(alive(leftover)).toBe(false);
      const ours = await postmasterPid();
      expect(ours).not.toBe(leftover);

      // Ctrl-C: SIGINT to the service's whole group, twice at once (the terminal's and npm's forwarded one).
      second.signalGroup('SIGINT');
      second.signalGroup('SIGINT');
      expect(await second.exited()).toBe(0);
      expect(second.output).toMatch(/"signal":"SIGINT","msg":"shutting down"/);
      expect(second.output).not.toMatch(/second signal|cannot start|"level":50/);
      expect(alive(ours)).toBe(false);
    } finally {
      first.close();
      second.close();
      await rm(log, { force: true });
    }
  }, 180_000);
});
