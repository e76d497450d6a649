import { JsonRpcProvider, Network, Wallet, keccak256, parseEther } from 'ethers';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChainError } from '../src/providers/chain/chain.errors.js';
import { insertChainTx } from '../src/providers/chain/chain-transactions.repo.js';
import { createHostWallet, type HostWallet, type HostWalletOptions } from '../src/providers/chain/host-wallet.js';
import { allocateNonce } from '../src/providers/chain/nonce.repo.js';
import { startLocalChain, type LocalChain } from '../src/sandbox/local-chain.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

// The host wallet on real Postgres and a real EVM (EDR) behind a JSON-RPC endpoint over HTTP. Every
// test uses a host key of its own, so nonces and "transactions on chain from the host" are per test.
// The chain mines each accepted transaction before it answers, so a resolved send is already mined.

let db: TestDatabase;
let chain: LocalChain;
let reader: JsonRpcProvider;
const logLines: string[] = [];
const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
const hostKeys: string[] = [];
const wallets: HostWallet[] = [];

beforeAll(async () => {
  [db, chain] = await Promise.all([createTestDatabase(), startLocalChain()]);
  reader = new JsonRpcProvider(chain.rpcUrl, Network.from(chain.chainId), { staticNetwork: true, cacheTimeout: -1 });
});
afterAll(async () => {
  wallets.forEach((w) => w.close());
  reader?.destroy();
  await chain?.close();
  await db?.drop();
});

/** A fresh host key with `eth` ETH on the chain, and its wallet. */
async function newHost(eth = '100', options: Partial<HostWalletOptions> = {}): Promise<{ wallet: HostWallet; key: string }> {
  const key = Wallet.createRandom().privateKey;
  hostKeys.push(key);
  const wallet = createHostWallet({ pool: db.pool, rpcUrl: chain.rpcUrl, privateKey: key, chainId: chain.chainId, log, ...options });
  wallets.push(wallet);
  await chain.setBalance(wallet.address, parseEther(eth));
  return { wallet, key };
}

const recipient = () => Wallet.createRandom().address;
const minedFrom = (address: string) => reader.getTransactionCount(address, 'latest');

/** What a process that died right after committing leaves behind: the signed, stored, never broadcast transaction. */
async function storeUnbroadcast(key: string, txKey: string, to: string, valueWei: bigint): Promise<{ txHash: string; nonce: number }> {
  const signer = new Wallet(key);
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    const nonce = await allocateNonce(client, signer.address, chain.chainId, 0);
    const rawTx = await signer.signTransaction({
      type: 2, chainId: chain.chainId, nonce, to, value: valueWei, gasLimit: 21_000n, maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 10n ** 9n,
    });
    const txHash = keccak256(rawTx);
    await insertChainTx(client, {
      txKey, fromAddress: signer.address, chainId: chain.chainId, nonce, toAddress: to, valueWei, tokenAddress: null, tokenAmount: null, data: '0x', rawTx, txHash,
    });
    await client.query('COMMIT');
    return { txHash, nonce };
  } finally {
    client.release();
  }
}

async function rejection(promise: Promise<unknown>): Promise<ChainError> {
  const error = await promise.then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(ChainError);
  return error as ChainError;
}

async function row(txKey: string) {
  const { rows } = await db.pool.query('SELECT * FROM chain_transactions WHERE tx_key = $1', [txKey]);
  return rows[0] as Record<string, unknown> | undefined;
}

describe('host wallet', () => {
  it('sends ETH: signed, stored, broadcast, mined, one transaction from the host', async () => {
    const { wallet } = await newHost();
    const to = recipient();
    const sent = await wallet.send('pay:eth-1', { to, valueWei: parseEther('1.5') });
    expect(sent).toMatchObject({ nonce: 0, rebroadcast: false });
    expect(await minedFrom(wallet.address)).toBe(1);
    expect(await wallet.balanceOf(to)).toBe(parseEther('1.5'));
    const onChain = await reader.getTransaction(sent.txHash);
    expect(onChain).toMatchObject({ from: wallet.address, to, nonce: 0, type: 2, gasLimit: 21_000n });

    expect(await wallet.status('pay:eth-1')).toMatchObject({ state: 'confirmed', txHash: sent.txHash, confirmations: 1 });
    expect(await row('pay:eth-1')).toMatchObject({
      nonce: '0', value_wei: '1500000000000000000', tx_hash: sent.txHash, receipt_status: 1, broadcast_attempts: 1, last_broadcast_error: null,
    });
    expect(await wallet.status('pay:nothing')).toEqual({ state: 'unknown_key' });
  });

  it('counts confirmations from the latest block', async () => {
    const { wallet } = await newHost();
    const sent = await wallet.send('pay:conf', { to: recipient(), valueWei: 1n });
    expect(await wallet.status('pay:conf', 3)).toMatchObject({ state: 'pending', txHash: sent.txHash, confirmations: 1 });
    await chain.mine(2);
    expect(await wallet.status('pay:conf', 3)).toMatchObject({ state: 'confirmed', confirmations: 3 });
  });

  it('the same key sent 50 times at once: one transaction on chain, one hash, signed once', async () => {
    const { wallet } = await newHost();
    const to = recipient();
    const results = await Promise.all(Array.from({ length: 50 }, () => wallet.send('pay:dup', { to, valueWei: 7n })));
    expect(new Set(results.map((r) => r.txHash)).size).toBe(1);
    expect(results.every((r) => r.nonce === 0)).toBe(true);
    expect(results.filter((r) => !r.rebroadcast)).toHaveLength(1);
    expect(await minedFrom(wallet.address)).toBe(1);
    expect(await wallet.balanceOf(to)).toBe(7n);
    const { rows } = await db.pool.query('SELECT next_nonce FROM host_wallets WHERE address = $1', [wallet.address]);
    expect(rows).toEqual([{ next_nonce: '1' }]);
  });

  it('20 keys at once: nonces 0..19, contiguous, all mined, none lost', async () => {
    const { wallet } = await newHost();
    const to = recipient();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => wallet.send(`pay:many-${i}`, { to, valueWei: BigInt(i + 1) })));
    expect(results.map((r) => r.nonce).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(await minedFrom(wallet.address)).toBe(20);
    expect(await wallet.balanceOf(to)).toBe(210n); // 1 + 2 + ... + 20
    for (const [i, r] of results.entries()) {
      expect((await reader.getTransactionReceipt(r.txHash))?.status).toBe(1);
      expect(await wallet.status(`pay:many-${i}`)).toMatchObject({ state: 'confirmed', txHash: r.txHash });
    }
  });

  it('a crash after signing, before broadcasting: the next send broadcasts the stored bytes, nothing is re-signed', async () => {
    const { wallet, key } = await newHost();
    const to = recipient();
    const stored = await storeUnbroadcast(key, 'pay:crash', to, 42n);
    expect(await minedFrom(wallet.address)).toBe(0);
    const sent = await wallet.send('pay:crash', { to, valueWei: 42n });
    expect(sent).toEqual({ txHash: stored.txHash, nonce: 0, rebroadcast: true });
    expect(await minedFrom(wallet.address)).toBe(1);
    expect(await wallet.balanceOf(to)).toBe(42n);
    expect(await row('pay:crash')).toMatchObject({ broadcast_attempts: 1 });
  });

  it('a later send re-broadcasts an earlier transaction no node ever saw, so its nonce gap does not hold the queue', async () => {
    const { wallet, key } = await newHost('100', { gapGraceMs: 0 });
    const first = await storeUnbroadcast(key, 'pay:gap-a', recipient(), 1n);
    const second = await wallet.send('pay:gap-b', { to: recipient(), valueWei: 2n });
    expect(second.nonce).toBe(1);
    expect(await minedFrom(wallet.address)).toBe(2);
    expect((await reader.getTransactionReceipt(first.txHash))?.status).toBe(1);
  });

  it('the broadcast answer is lost: unavailable, and the retry finds the transaction by its hash', async () => {
    const { wallet } = await newHost();
    const to = recipient();
    chain.faults.dropNextSendRawTransaction(1);
    const lost = await rejection(wallet.send('pay:lost', { to, valueWei: 5n }));
    expect(lost).toMatchObject({ kind: 'unavailable', retryable: true });
    expect(await minedFrom(wallet.address)).toBe(1); // the node got it
    const stored = await row('pay:lost');
    expect(stored?.last_broadcast_error).toMatch(/ECONNRESET|socket hang up/);

    const retry = await wallet.send('pay:lost', { to, valueWei: 5n });
    expect(retry).toEqual({ txHash: stored?.tx_hash, nonce: 0, rebroadcast: true });
    expect(await minedFrom(wallet.address)).toBe(1);
    expect(await wallet.balanceOf(to)).toBe(5n);
    expect(await row('pay:lost')).toMatchObject({ last_broadcast_error: null });
  });

  it('RPC down at the broadcast, then back: unavailable (retryable), then the same hash goes through', async () => {
    const { wallet } = await newHost();
    const to = recipient();
    chain.faults.downOn('eth_sendRawTransaction', '503');
    const down = await rejection(wallet.send('pay:down', { to, valueWei: 9n }));
    expect(down).toMatchObject({ kind: 'unavailable', retryable: true });
    expect(down.message).toMatch(/503/);
    const stored = await row('pay:down');
    expect(stored).toMatchObject({ broadcast_at: null, broadcast_attempts: 1 });
    expect(await rejection(wallet.status('pay:down'))).toMatchObject({ kind: 'unavailable', retryable: true });

    await chain.faults.down(false);
    expect(await minedFrom(wallet.address)).toBe(0);
    const back = await wallet.send('pay:down', { to, valueWei: 9n });
    expect(back).toEqual({ txHash: stored?.tx_hash, nonce: 0, rebroadcast: true });
    expect(await minedFrom(wallet.address)).toBe(1);
  });

  it('RPC refusing connections before anything is signed: unavailable, no nonce taken', async () => {
    const { wallet } = await newHost();
    await chain.faults.down(true, 'refused');
    try {
      expect(await rejection(wallet.send('pay:refused', { to: recipient(), valueWei: 1n }))).toMatchObject({ kind: 'unavailable', retryable: true });
      expect(await row('pay:refused')).toBeUndefined();
    } finally {
      await chain.faults.down(false);
    }
    expect(await wallet.send('pay:refused', { to: recipient(), valueWei: 1n })).toMatchObject({ nonce: 0, rebroadcast: false });
  });

  it('sends USDT (ERC-20, 6 decimals): balances move by exactly the amount', async () => {
    const { wallet } = await newHost();
    const token = chain.usdt.address;
    await chain.transferUsdt(wallet.address, 1_000_000_000n); // 1,000 USDT
    const to = recipient();
    const ethBefore = await wallet.balanceOf(wallet.address);
    const sent = await wallet.send('pay:usdt', { token, to, amount: 123_456_789n });
    expect(await wallet.tokenBalanceOf(token, to)).toBe(123_456_789n);
    expect(await wallet.tokenBalanceOf(token, wallet.address)).toBe(1_000_000_000n - 123_456_789n);
    const tx = await reader.getTransaction(sent.txHash);
    expect(tx).toMatchObject({ to: token, value: 0n });
    const receipt = await reader.getTransactionReceipt(sent.txHash);
    expect(await wallet.balanceOf(wallet.address)).toBe(ethBefore - receipt!.gasUsed * receipt!.gasPrice);
    expect(await row('pay:usdt')).toMatchObject({ to_address: to, token_address: token, token_amount: '123456789', value_wei: '0' });
    expect(await wallet.status('pay:usdt')).toMatchObject({ state: 'confirmed' });
  });

  it('a transaction that runs out of gas is mined and reported reverted', async () => {
    const { wallet } = await newHost('100', { gasLimit: 25_000n });
    await chain.transferUsdt(wallet.address, 10n);
    const sent = await wallet.send('pay:revert', { token: chain.usdt.address, to: recipient(), amount: 10n });
    expect(await wallet.status('pay:revert')).toMatchObject({ state: 'reverted', txHash: sent.txHash });
    expect(await row('pay:revert')).toMatchObject({ receipt_status: 0 });
  });

  it('insufficient funds: refused before a nonce is taken, so later sends are not blocked', async () => {
    const { wallet } = await newHost('0.001');
    const poor = await rejection(wallet.send('pay:poor', { to: recipient(), valueWei: parseEther('1') }));
    expect(poor).toMatchObject({ kind: 'insufficient_funds', retryable: false });
    const noTokens = await rejection(wallet.send('pay:poor-usdt', { token: chain.usdt.address, to: recipient(), amount: 1n }));
    expect(noTokens).toMatchObject({ kind: 'insufficient_funds', retryable: false });
    expect(await row('pay:poor')).toBeUndefined();
    expect(await wallet.send('pay:affordable', { to: recipient(), valueWei: 1n })).toMatchObject({ nonce: 0 });
    expect(await minedFrom(wallet.address)).toBe(1);
  });

  it('a stored transaction the wallet can no longer pay for: not retryable; once funded the same key sends it', async () => {
    const { wallet, key } = await newHost('0.001');
    const to = recipient();
    const stored = await storeUnbroadcast(key, 'pay:underfunded', to, parseEther('1'));
    expect(await rejection(wallet.send('pay:underfunded', { to, valueWei: parseEther('1') }))).toMatchObject({ kind: 'insufficient_funds', retryable: false });
    await chain.setBalance(wallet.address, parseEther('2'));
    expect(await wallet.send('pay:underfunded', { to, valueWei: parseEther('1') })).toEqual({ txHash: stored.txHash, nonce: 0, rebroadcast: true });
    expect(await minedFrom(wallet.address)).toBe(1);
  });

  it('catches up with a transaction sent from the host key outside the service', async () => {
    const { wallet, key } = await newHost();
    const outside = await new Wallet(key, reader).sendTransaction({ to: recipient(), value: 1n, nonce: 0 });
    await outside.wait();
    expect(await wallet.send('pay:after-outside', { to: recipient(), valueWei: 1n })).toMatchObject({ nonce: 1 });
    expect(await minedFrom(wallet.address)).toBe(2);
  });

  it('our nonce taken by a transaction the service did not sign: fate unknown, with evidence, never re-signed', async () => {
    const { wallet, key } = await newHost();
    const stored = await storeUnbroadcast(key, 'pay:stolen-nonce', recipient(), 3n);
    const other = await new Wallet(key, reader).sendTransaction({ to: recipient(), value: 4n, nonce: 0 });
    await other.wait();
    const error = await rejection(wallet.send('pay:stolen-nonce', { to: (await row('pay:stolen-nonce'))?.to_address as string, valueWei: 3n }));
    expect(error).toMatchObject({ kind: 'fate_unknown', retryable: false, evidence: { txKey: 'pay:stolen-nonce', txHash: stored.txHash, nonce: 0 } });
    expect(error.evidence.nodeAnswer).toMatch(/nonce too low/i);
    expect(await minedFrom(wallet.address)).toBe(1);
    expect(await row('pay:stolen-nonce')).toMatchObject({ tx_hash: stored.txHash, broadcast_at: null });
  });

  it('refuses a key reused for a different transfer, and a bad address, without signing', async () => {
    const { wallet } = await newHost();
    const to = recipient();
    await wallet.send('pay:reuse', { to, valueWei: 1n });
    expect(await rejection(wallet.send('pay:reuse', { to, valueWei: 2n }))).toMatchObject({ kind: 'rejected', retryable: false });
    expect(await rejection(wallet.send('pay:bad', { to: '0x1234', valueWei: 1n }))).toMatchObject({ kind: 'rejected', retryable: false });
    expect(await minedFrom(wallet.address)).toBe(1);
  });

  it('a fee cap below what the network needs: retryable, nothing signed', async () => {
    const { wallet } = await newHost('100', { maxFeePerGasCap: 1n });
    expect(await rejection(wallet.send('pay:capped', { to: recipient(), valueWei: 1n }))).toMatchObject({ kind: 'fee_above_cap', retryable: true });
    expect(await row('pay:capped')).toBeUndefined();
  });

  it('never writes a private key into a log line, a row or an error', async () => {
    expect(logLines.length).toBeGreaterThan(10);
    const text = logLines.join('\n').toLowerCase();
    const { rows } = await db.pool.query('SELECT * FROM chain_transactions');
    const stored = JSON.stringify(rows).toLowerCase();
    for (const key of hostKeys) {
      const bare = key.slice(2).toLowerCase();
      expect(text).not.toContain(bare);
      expect(stored).not.toContain(bare);
    }
    const bad = await rejection(Promise.resolve().then(() => createHostWallet({ pool: db.pool, rpcUrl: chain.rpcUrl, privateKey: '0xnot-a-key-secret', log })));
    expect(bad.message).not.toContain('not-a-key-secret');
  });
});
