import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { loadConfig } from '../../src/config.js';
import { startEmbeddedPostgres } from '../../src/persistence/embedded-postgres.js';
import { migrate } from '../../src/persistence/migrate.js';
import { createBoss, ensureQueues } from '../../src/persistence/queues.js';
import { withDatabase } from './db-url.js';

// Tests always hit a real Postgres: DATABASE_URL when set, otherwise a throwaway embedded cluster.
// One template database is migrated (our tables and pg-boss's) once; each test file clones it, which
// takes milliseconds and keeps files isolated (graphile-worker's pattern).

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
    templateDb: string;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export default async function setup(project: TestProject) {
  let stopEmbedded: (() => Promise<void>) | null = null;
  let dataDir: string | null = null;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    dataDir = await mkdtemp(join(tmpdir(), 'telepay-test-pg-'));
    const embedded = await startEmbeddedPostgres({ dir: dataDir, port: await freePort(), persistent: false });
    stopEmbedded = embedded.stop;
    adminUrl = embedded.url;
  }

  const templateDb = `telepay_template_${process.pid}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${templateDb} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${templateDb}`);

  const templateUrl = withDatabase(adminUrl, templateDb);
  const pool = new pg.Pool({ connectionString: templateUrl, max: 2 });
  await migrate(pool);
  await pool.end();
  const boss = createBoss(templateUrl, { max: 2, schedule: false });
  boss.on('error', () => {});
  await boss.start();
  // Short retry delays keep retry tests quick; production defaults are in src/config.ts.
  await ensureQueues(boss, loadConfig({ NODE_ENV: 'test', JOB_RETRY_DELAY: '1s', JOB_RETRY_DELAY_MAX: '2s', JOB_RETRY_LIMIT: '3' }));
  await boss.stop({ graceful: false, close: true });

  project.provide('adminUrl', adminUrl);
  project.provide('templateDb', templateDb);

  return async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${templateDb} WITH (FORCE)`).catch(() => {});
    await admin.end();
    await stopEmbedded?.();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  };
}
