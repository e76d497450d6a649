import { createHmac, timingSafeEqual } from 'node:crypto';

// The success page link carries this token; only with it does the status API reveal the invite link.
// It is an HMAC of the order id, so nothing is stored and a guessed order id reveals nothing.

export function signStatusToken(secret: string, orderId: string): string {
  return createHmac('sha256', secret).update(`status:${orderId}`).digest('base64url');
}

// The success page polls with the same token every few seconds; a token that verified once is
// remembered (per secret, token -> its order id) so the next poll is a map lookup instead of an HMAC.
// Only tokens that verified are kept: a wrong or guessed token is always hashed and compared in
// constant time, and a remembered token is only ever the holder's own, so a lookup tells nobody
// anything. Bounded: when full it starts over (the cost of a miss is one HMAC).
const REMEMBERED_MAX = 10_000;
const remembered = new Map<string, Map<string, string>>();

export function verifyStatusToken(secret: string, orderId: string, token: string | undefined | null): boolean {
  if (!token) return false;
  let known = remembered.get(secret);
  if (known?.get(token) === orderId) return true;
  const expected = Buffer.from(signStatusToken(secret, orderId));
  const given = Buffer.from(token);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
  if (!known) {
    if (remembered.size >= 4) remembered.clear();
    remembered.set(secret, (known = new Map()));
  }
  if (known.size >= REMEMBERED_MAX) known.clear();
  known.set(token, orderId);
  return true;
}
