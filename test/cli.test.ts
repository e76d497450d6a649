import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';

const exec = promisify(execFile);

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(join(tmpdir(), 'telepay-cli-'));
});
afterAll(async () => {
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

async function cli(args: string[], file?: object): Promise<{ code: number; stdout: string; stderr: string }> {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.json`);
  if (file) await writeFile(path, JSON.stringify(file));
  try {
    const { stdout, stderr } = await exec(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args, ...(file ? ['--file', path] : [])], {
      env: { ...process.env, DATABASE_URL: db.url, LOG_LEVEL: 'silent' },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('npm run cli -- channels', () => {
  it('adds a channel from a file, then updates it by its negative id', async () => {
    const added = await cli(['channels', 'add'], {
      open_channel_id: '-9007199254740993',
      closed_channel_id: '-1009876543210',
      title: 'Signals',
      wallet_address: 'TNDFkiSmBQorNFacb3735q8MnT29sn8BLn',
      currency: 'usdt',
      network: 'trx',
      strategy: 'instant',
      platform_fee_percent: '10',
      plans: [{ plan_id: 'month', title: '1 month', price_usd: '9.99', duration_days: 30 }],
    });
    expect(added.code).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({ open_channel_id: '-9007199254740993', plans: [{ plan_id: 'month', price_usd: '9.99' }] });

    const updated = await cli(['channels', 'update', '-9007199254740993'], { platform_fee_percent: '5' });
    expect(updated.code).toBe(0);
    expect(JSON.parse(updated.stdout).platform_fee_percent).toBe('5');
  });

  it('refuses invalid input with exit code 1, naming each field (checked against the stored channel too)', async () => {
    const res = await cli(['channels', 'update', '-9007199254740993'], { strategy: 'threshold', plans: [{ title: 'w', price_usd: '-1', duration_days: 7 }] });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('plans.0.price_usd: must not be negative');
    const threshold = await cli(['channels', 'update', '-9007199254740993'], { strategy: 'threshold' });
    expect(threshold.code).toBe(1);
    expect(threshold.stderr).toContain('threshold_usd: is required');
  });

  it('prints usage with exit code 2 for an unknown command', async () => {
    const res = await cli(['channels', 'frobnicate']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('Usage:');
  });
});
