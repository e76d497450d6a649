import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { loadConfig } from '../../src/config.js';
import { migrate } from '../../src/persistence/migrate.js';
import { createBoss, ensureQueues } from '../../src/persistence/queues.js';
import { createScratchDatabase, openScratchServer } from '../../src/persistence/scratch-postgres.js';

// Tests always hit a real Postgres: DATABASE_URL when set, otherwise a throwaway embedded cluster.
// One template database is migrated (our tables and pg-boss's) once; each test file clones it, which
// takes milliseconds and keeps files isolated (graphile-worker's pattern).

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
    templateDb: string;
  }
}

export default async function setup(project: TestProject) {
  const server = await openScratchServer('telepay-test');
  const adminUrl = server.adminUrl;
  const templateDb = `telepay_template_${process.pid}`;
  const template = await createScratchDatabase(adminUrl, templateDb, { replace: true });
  const templateUrl = template.url;
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
    await template.drop().catch(() => {});
    await server.close();
  };
}
