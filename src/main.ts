import closeWithGrace from 'close-with-grace';
import { ConfigError, loadConfig } from './config.js';
import { configSecrets, createLogger } from './logger.js';
import { startService } from './service.js';

let config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\nSee .env.example and the README for every variable.\n`);
    process.exit(1);
  }
  throw error;
}

const log = createLogger(config.LOG_LEVEL, { secrets: configSecrets(config) });
const service = await startService(config, log);
log.info({ url: `http://${config.HOST}:${service.app.server.address() && typeof service.app.server.address() === 'object' ? (service.app.server.address() as { port: number }).port : config.PORT}` }, 'TelePay Engine is up');

// SIGTERM/SIGINT: stop taking requests and jobs, finish in-flight work, close everything; a second
// signal or the grace period running out forces the exit.
closeWithGrace({ delay: config.SHUTDOWN_GRACE }, async ({ signal, err }) => {
  if (err) log.error({ err }, 'shutting down after an error');
  else log.info({ signal }, 'shutting down');
  await service.close();
});
