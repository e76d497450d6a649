import { describe, expect, it } from 'vitest';
import { signStatusToken, verifyStatusToken } from './status-token.js';

describe('status tokens', () => {
  const secret = 'x'.repeat(32);
  it('a token verifies for its own order only', () => {
    const token = signStatusToken(secret, 'order-1');
    expect(verifyStatusToken(secret, 'order-1', token)).toBe(true);
    expect(verifyStatusToken(secret, 'order-2', token)).toBe(false);
  });
  it('a token from another secret, a truncated token or none is refused', () => {
    const token = signStatusToken(secret, 'order-1');
    expect(verifyStatusToken('y'.repeat(32), 'order-1', token)).toBe(false);
    expect(verifyStatusToken(secret, 'order-1', token.slice(0, -1))).toBe(false);
    expect(verifyStatusToken(secret, 'order-1', undefined)).toBe(false);
  });
  it('a remembered token still verifies for its own order and secret only', () => {
    const token = signStatusToken(secret, 'order-3');
    for (let i = 0; i < 3; i++) {
      expect(verifyStatusToken(secret, 'order-3', token)).toBe(true);
      expect(verifyStatusToken(secret, 'order-4', token)).toBe(false);
      expect(verifyStatusToken('y'.repeat(32), 'order-3', token)).toBe(false);
    }
  });
});
