import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

describe('configuration', () => {
  it('starts with nothing set: embedded Postgres, local port, defaults with units', () => {
    const config = loadConfig({});
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.PORT).toBe(3000);
    expect(config.RECONCILE_AFTER).toBe(15 * 60_000);
    expect(config.INVITE_EXPIRE_AFTER).toBe(86_400_000);
  });

  it('names the variable and what is wrong with it', () => {
    const attempt = () => loadConfig({ PORT: 'eighty', RECONCILE_AFTER: '15 minutes', DATABASE_URL: 'mysql://x' });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (error) {
      const problems = (error as ConfigError).problems.join('\n');
      expect(problems).toMatch(/^PORT: /m);
      expect(problems).toMatch(/^RECONCILE_AFTER: expected a duration like 30s, 15m, 3d \(got '15 minutes'\)/m);
      expect(problems).toMatch(/^DATABASE_URL: /m);
    }
  });

  it('RECONCILE_EVERY must be a 5-field cron expression pg-boss can schedule', () => {
    expect(loadConfig({}).RECONCILE_EVERY).toBe('*/5 * * * *');
    expect(loadConfig({ RECONCILE_EVERY: '0 0 1 1 *' }).RECONCILE_EVERY).toBe('0 0 1 1 *');
    for (const bad of ['nonsense', '61 * * * *', '* * *', '*/5 * * * * *', '@hourly']) {
      expect(() => loadConfig({ RECONCILE_EVERY: bad }), bad).toThrow(/^ {2}- RECONCILE_EVERY: expected a 5-field cron expression like \*\/5 \* \* \* \* \(got '/m);
    }
  });

  it('SUBSCRIPTION_SWEEP_EVERY is checked the same way (every minute by default, the finest pg-boss schedules)', () => {
    expect(loadConfig({}).SUBSCRIPTION_SWEEP_EVERY).toBe('* * * * *');
    expect(loadConfig({ SUBSCRIPTION_SWEEP_EVERY: '*/2 * * * *' }).SUBSCRIPTION_SWEEP_EVERY).toBe('*/2 * * * *');
    for (const bad of ['*/15 * * * * *', 'every 30s', '* * * *']) {
      expect(() => loadConfig({ SUBSCRIPTION_SWEEP_EVERY: bad }), bad).toThrow(/^ {2}- SUBSCRIPTION_SWEEP_EVERY: expected a 5-field cron expression/m);
    }
  });

  it('durations share one parser: absurd lengths and bad reminder lists are refused by name', () => {
    expect(loadConfig({ JOB_RETRY_DELAY: '250ms' }).JOB_RETRY_DELAY).toBe(250);
    expect(() => loadConfig({ INVITE_EXPIRE_AFTER: '99999d' })).toThrow(/INVITE_EXPIRE_AFTER: '99999d' is longer than 10 years/);
    expect(loadConfig({ SUBSCRIPTION_REMINDERS: '3d, 12h' }).SUBSCRIPTION_REMINDERS).toBe('3d, 12h');
    expect(() => loadConfig({ SUBSCRIPTION_REMINDERS: '3d,tomorrow' })).toThrow(/SUBSCRIPTION_REMINDERS: .*\(got 'tomorrow'\)/);
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ DATABASE_URL: '' }).DATABASE_URL).toBeUndefined();
  });

  it('rejects a malformed wallet key without echoing it', () => {
    try {
      loadConfig({ HOST_WALLET_PRIVATE_KEY: 'secret-but-wrong' });
      expect.unreachable();
    } catch (error) {
      expect(String(error)).toContain('HOST_WALLET_PRIVATE_KEY: must be 0x followed by 64 hex digits');
      expect(String(error)).not.toContain('secret-but-wrong');
    }
  });
});
