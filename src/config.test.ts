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
