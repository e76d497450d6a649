import { createHmac, timingSafeEqual } from 'node:crypto';

// The success page link carries this token; only with it does the status API reveal the invite link.
// It is an HMAC of the order id, so nothing is stored and a guessed order id reveals nothing.

export function signStatusToken(secret: string, orderId: string): string {
  return createHmac('sha256', secret).update(`status:${orderId}`).digest('base64url');
}

export function verifyStatusToken(secret: string, orderId: string, token: string | undefined | null): boolean {
  if (!token) return false;
  const expected = Buffer.from(signStatusToken(secret, orderId));
  const given = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
