import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { startService, type Service, type ServiceOptions } from '../../src/service.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface TestService {
  service: Service;
  db: TestDatabase;
  config: Config;
  /** http://127.0.0.1:PORT of the running service. */
  url: string;
  close(): Promise<void>;
}

/**
 * The whole service, as `npm start` runs it, on a fresh test database and a free port.
 * `env` overrides configuration (point provider URLs at fakes here).
 */
export async function startTestService(env: Record<string, string> = {}, options?: ServiceOptions): Promise<TestService> {
  const db = await createTestDatabase();
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    LOG_LEVEL: (process.env.TEST_LOG_LEVEL ?? 'silent') as string,
    JOB_RETRY_DELAY: '1s',
    JOB_RETRY_DELAY_MAX: '2s',
    JOB_RETRY_LIMIT: '3',
    // The subscription sweep runs when a test says so (sweepSubscriptions, or a job on its queue), not
    // every minute behind its back: tests move expiries into the past and look at what follows.
    SUBSCRIPTION_SWEEP_EVERY: '0 0 1 1 *',
    ...env,
    DATABASE_URL: db.url,
  });
  const service = await startService(config, createLogger(config.LOG_LEVEL), options);
  const address = service.app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    service,
    db,
    config,
    url: `http://127.0.0.1:${port}`,
    async close() {
      await service.close();
      await db.drop();
    },
  };
}
