/**
 * Channel and payment ids beyond 2^53, so a float anywhere on the way would change them. Each call
 * gives its own sequence (per test file).
 */
export function bigIds() {
  let seq = 0;
  return {
    nextId: () => `-100${9_007_199_254_740 + ++seq}`,
    paymentId: () => `${9_007_199_254_740_993n + BigInt(++seq)}`,
  };
}
