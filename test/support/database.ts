import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { inject } from 'vitest';
import { createPool } from '../../src/persistence/database.js';
import { createScratchDatabase } from '../../src/persistence/scratch-postgres.js';

export interface TestDatabase {
  url: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

/**
 * A fresh database cloned from the migrated template (our schema and pg-boss's, queues created), or
 * with `empty` a database with nothing in it (for services that must migrate it themselves).
 */
export async function createTestDatabase(options: { empty?: boolean } = {}): Promise<TestDatabase> {
  const scratch = await createScratchDatabase(inject('adminUrl'), `telepay_t_${randomBytes(6).toString('hex')}`, options.empty ? {} : { template: inject('templateDb') });
  const pool = createPool(scratch.url, 60);
  return {
    url: scratch.url,
    pool,
    async drop() {
      await pool.end();
      await scratch.drop();
    },
  };
}
