import { makeError } from 'ethers';
import { describe, expect, it } from 'vitest';
import { ChainError, classifyBroadcastError, describeError, isTransportError, readError } from './chain.errors.js';

/** The shapes ethers 6 throws for a JSON-RPC error answer: mapped ones carry info.error, the rest error. */
const mapped = (message: string) => makeError('nonce has already been used', 'NONCE_EXPIRED', { transaction: {}, info: { error: { code: -32000, message } } });
const unmapped = (message: string) => makeError('could not coalesce error', 'UNKNOWN_ERROR', { error: { code: -32000, message } });

describe('classifyBroadcastError', () => {
  it.each([
    ['already known', 'already_known'], // geth
    ['Known transaction: 0xabc', 'already_known'], // EDR / Hardhat
    ['nonce too low: next nonce 5, tx nonce 4', 'nonce_too_low'], // geth
    ['Nonce too low. Expected nonce to be 1 but got 0.', 'nonce_too_low'], // EDR
    ['replacement transaction underpriced', 'underpriced_replacement'],
    ['Nonce too high. Expected nonce to be 1 but got 5.', 'nonce_too_high'],
    ['insufficient funds for gas * price + value', 'insufficient_funds'], // geth
    ["Sender doesn't have enough funds to send tx. The max upfront cost is: 2 and the sender's balance is: 1.", 'insufficient_funds'], // EDR
    ['intrinsic gas too low', 'gas_too_low'],
    ['Transaction requires at least 21000 gas but got 20000', 'gas_too_low'],
    ['daily request count exceeded, request rate limited', 'unavailable'],
    ['invalid sender', 'rejected'],
  ])('%s -> %s', (message, verdict) => {
    expect(classifyBroadcastError(unmapped(message))).toBe(verdict);
    expect(classifyBroadcastError(mapped(message))).toBe(verdict);
  });

  it('reads the node, not ethers: "base fee exceeds gas limit" is not insufficient funds', () => {
    const error = makeError('insufficient funds for intrinsic transaction cost', 'INSUFFICIENT_FUNDS', { info: { error: { code: -32000, message: 'base fee exceeds gas limit' } } } as never);
    expect(classifyBroadcastError(error)).toBe('rejected');
  });

  it('treats anything without a JSON-RPC answer as unavailable: the transaction may or may not have arrived', () => {
    expect(classifyBroadcastError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe('unavailable');
    expect(classifyBroadcastError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe('unavailable');
    expect(classifyBroadcastError(makeError('server response 503 Service Unavailable', 'SERVER_ERROR'))).toBe('unavailable');
    expect(classifyBroadcastError(makeError('timeout', 'TIMEOUT', { operation: 'request', reason: 'timeout' }))).toBe('unavailable');
  });
});

describe('readError', () => {
  it('makes transport failures retryable and refusals not', () => {
    const down = readError('balance', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    expect(down).toMatchObject({ kind: 'unavailable', retryable: true });
    const refused = readError('balance', unmapped('invalid argument 0: hex string has length 3'));
    expect(refused).toMatchObject({ kind: 'rejected', retryable: false });
    expect(isTransportError(unmapped('header not found'))).toBe(true);
  });

  it('passes a ChainError through unchanged', () => {
    const original = new ChainError('insufficient_funds', false, 'no money');
    expect(readError('x', original)).toBe(original);
  });

  it('describes errors briefly, preferring the node\'s words', () => {
    expect(describeError(unmapped('already known'))).toBe('node: already known');
    expect(describeError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe('ECONNRESET: socket hang up');
  });
});
