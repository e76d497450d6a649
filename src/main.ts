import closeWithGrace from 'close-with-grace';
import { ConfigError, loadConfig, type Config } from './config.js';
import { configSecrets, createLogger } from './logger.js';
import { configurationProblems, describeStartFailure } from './runtime.js';
import { startService, type Service } from './service.js';
import { printBanner } from './banner.js';

// `npm start` (ROLE=all: HTTP and workers in one process; ROLE=web or ROLE=worker run one side, see
// docs/deploy.md). A start that fails for a reason the operator fixes (configuration, a port in use, the
// database unreachable, a leftover embedded Postgres that will not stop) ends with ONE line on stderr
// saying what to change, and exit code 1; only an unexpected error (a bug) adds its stack.
// Signals: SIGTERM / SIGINT stop taking requests and jobs, finish in-flight work and close everything
// (the embedded Postgres last). Ctrl-C under `npm start` delivers SIGINT twice at once (the terminal's
// to the whole process group, and npm forwarding its own): a repeat within a second is the same
// Ctrl-C, not a second one. A later second signal, or the grace period running out, forces the exit.

const FORCE_AFTER_MS = 1_000;

function fail(error: unknown, config: Config | null): never {
  const { line, expected } = describeStartFailure(error, config);
  process.stderr.write(`TelePay Engine cannot start: ${line}\n`);
  if (!expected && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  process.exit(1);
}

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) fail(new ConfigError(configurationProblems(error, process.env)), null);
  fail(error, null);
}

const log = createLogger(config.LOG_LEVEL, { secrets: configSecrets(config) });

// Installed before the start, so a signal during it (migrations, the embedded Postgres starting) is
// honoured once the service is up, instead of killing the process under a half-started Postgres.
let firstSignalAt = 0;
let stopRequested: NodeJS.Signals | null = null;
let closer: { close(): unknown } | null = null;
function onSignal(signal: NodeJS.Signals) {
  if (firstSignalAt === 0) {
    firstSignalAt = Date.now();
    stopRequested = signal;
    if (closer) {
      log.info({ signal }, 'shutting down');
      void closer.close();
    } else {
      log.info({ signal }, 'stop requested while starting: stopping as soon as the start is done');
    }
    return;
  }
  if (Date.now() - firstSignalAt < FORCE_AFTER_MS) return; // the same Ctrl-C, delivered twice
  log.error({ signal }, 'second signal: exiting now without waiting for in-flight work');
  process.exit(1);
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, onSignal);

let service: Service;
try {
  service = await startService(config, log);
} catch (error) {
  fail(error, config);
}
const address = service.app.server.address();
const url = `http://${config.HOST}:${address && typeof address === 'object' ? address.port : config.PORT}`;
log.info({ url, role: config.ROLE }, 'TelePay Engine is up');
// ROLE=worker serves no public surface: one line says what it runs and where its probes are (docs/deploy.md).
if (config.ROLE === 'worker') log.info({ health: `${url}/health/ready`, metrics: `${url}/metrics` }, 'worker: effect workers, schedules and supervision running; HTTP serves only health and metrics');
else printBanner(config, service, log);

// Signals are ours (above); close-with-grace handles uncaught errors and runs the close with its grace period.
const grace = { delay: config.SHUTDOWN_GRACE, skip: ['SIGINT', 'SIGTERM'] as ['SIGINT', 'SIGTERM'], logger: false as const };
const onTimeout = (ms: number) => log.error(`shutdown took longer than SHUTDOWN_GRACE (${ms} ms): exiting without waiting any longer`);
closer = closeWithGrace({ ...grace, onTimeout }, async ({ err }) => {
  if (err) log.error({ err }, 'shutting down after an error');
  await service.close();
});
if (stopRequested) {
  log.info({ signal: stopRequested }, 'shutting down');
  void closer.close();
}
