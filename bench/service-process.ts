import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/persistence/scratch-postgres.js';

// The service as `npm start` runs it (`node --import tsx src/main.ts`), in a child process of its own:
// its CPU is read from /proc apart from the load generator and the fakes, which stay in the bench
// process, and the load generator never shares the service's event loop. Only main.ts and the
// environment variables of src/config.ts are used, so the same file drives older commits of src/.

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface ServiceProcess {
  url: string;
  pid: number;
  /** The last few kilobytes of the service's stdout and stderr. */
  output(): string;
  stop(): Promise<void>;
}

/** KEY=VALUE pairs separated by commas (BENCH_SERVICE_ENV), to try settings without editing the bench. */
export function parseEnvList(text: string | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of (text ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`BENCH_SERVICE_ENV: expected KEY=VALUE, got "${pair}"`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

/**
 * Starts the service with exactly `env` (plus PATH/HOME and the port): nothing else leaks in from the
 * bench's own environment (no .env file is read either), and resolves once /health/ready answers 200.
 */
export async function startServiceProcess(env: Record<string, string>, options: { readyTimeoutMs?: number } = {}): Promise<ServiceProcess> {
  const port = Number(env.PORT) || (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const childEnv: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    ...(process.env.TMPDIR && { TMPDIR: process.env.TMPDIR }),
    HOST: '127.0.0.1',
    PUBLIC_BASE_URL: url,
    ...env,
    PORT: String(port),
  };
  // BENCH_SERVICE_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles the service while it is measured.
  const nodeArgs = (process.env.BENCH_SERVICE_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-8_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited: string | null = null;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = signal ?? `code ${code}`;
      resolve();
    }),
  );

  const deadline = performance.now() + (options.readyTimeoutMs ?? 120_000);
  for (;;) {
    if (exited) throw new Error(`the service exited while starting (${exited}):\n${tail}`);
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the service did not become ready within ${options.readyTimeoutMs ?? 120_000} ms:\n${tail}`);
    }
    try {
      const res = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  let stopping: Promise<void> | null = null;
  return {
    url,
    pid: child.pid!,
    output: () => tail,
    stop: () =>
      (stopping ??= (async () => {
        if (exited) return;
        child.kill('SIGTERM'); // graceful: stop taking requests and jobs, finish in-flight work, close
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        await exit;
        clearTimeout(timer);
      })()),
  };
}
