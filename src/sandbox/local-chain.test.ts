import { Contract, JsonRpcProvider, Network, Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalChain, type LocalChain } from './local-chain.js';
import { USDT_ABI } from './usdt.contract.js';

let chain: LocalChain;
let provider: JsonRpcProvider;

beforeAll(async () => {
  chain = await startLocalChain();
  provider = new JsonRpcProvider(chain.rpcUrl, Network.from(chain.chainId), { staticNetwork: true, cacheTimeout: -1 });
});
afterAll(async () => {
  provider?.destroy();
  await chain?.close();
});

async function post(body: string): Promise<{ status: number; json: unknown }> {
  const response = await fetch(chain.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: response.status, json: await response.json().catch(() => null) };
}

function transfer(from: Wallet, nonce: number, to: string, value = 1n) {
  return from.signTransaction({ type: 2, chainId: chain.chainId, nonce, to, value, gasLimit: 21_000n, maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 10n ** 9n });
}

describe('local chain', () => {
  it('has deterministic pre-funded accounts and a 6-decimal USDT held by the treasury', async () => {
    expect(chain.accounts).toHaveLength(10);
    expect(chain.accounts[0]!.address).toBe('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266');
    expect(await provider.getBalance(chain.accounts[0]!.address)).toBe(10_000n * 10n ** 18n);
    expect(chain.usdt.treasury).toEqual(chain.accounts[9]);
    const usdt = new Contract(chain.usdt.address, USDT_ABI, provider);
    expect(await usdt.getFunction('decimals')()).toBe(6n);
    expect(await usdt.getFunction('symbol')()).toBe('USDT');
    expect(await usdt.getFunction('balanceOf')(chain.usdt.treasury.address)).toBe(10n ** 15n);
  });

  it('speaks JSON-RPC 2.0 over HTTP, single and batch, with ids echoed', async () => {
    expect(await post('{"jsonrpc":"2.0","id":"a","method":"eth_chainId","params":[]}')).toEqual({ status: 200, json: { jsonrpc: '2.0', id: 'a', result: '0x7a69' } });
    const batch = await post('[{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]},{"jsonrpc":"2.0","id":2,"method":"no_such_method","params":[]}]');
    expect(batch.json).toMatchObject([{ id: 1, result: '0x7a69' }, { id: 2, error: { code: -32004 } }]);
    expect((await post('{nope')).json).toMatchObject({ error: { code: -32700 } });
  });

  it('mines each transaction before answering, and queues a nonce gap as a real node does', async () => {
    const sender = new Wallet(chain.accounts[1]!.privateKey);
    const to = Wallet.createRandom().address;
    const start = await provider.getTransactionCount(sender.address, 'latest');
    const later = await provider.broadcastTransaction(await transfer(sender, start + 1, to));
    expect(await provider.getTransactionReceipt(later.hash)).toBeNull(); // waits for start
    const first = await provider.broadcastTransaction(await transfer(sender, start, to));
    expect((await provider.getTransactionReceipt(first.hash))?.status).toBe(1);
    expect((await provider.getTransactionReceipt(later.hash))?.status).toBe(1);
    expect(await provider.getBalance(to)).toBe(2n);
  });

  it('faults: down (refused, 503) and back, a lost broadcast answer, down at a given method', async () => {
    await chain.faults.down(true);
    await expect(provider.getBlockNumber()).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await chain.faults.down(false);
    await chain.faults.down(true, '503');
    expect((await post('{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}')).status).toBe(503);
    await chain.faults.down(false);
    expect(await provider.getBlockNumber()).toBeGreaterThan(0);

    const sender = new Wallet(chain.accounts[2]!.privateKey);
    const nonce = await provider.getTransactionCount(sender.address, 'latest');
    chain.faults.dropNextSendRawTransaction();
    await expect(provider.broadcastTransaction(await transfer(sender, nonce, sender.address))).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(await provider.getTransactionCount(sender.address, 'latest')).toBe(nonce + 1); // the node took it

    chain.faults.downOn('eth_sendRawTransaction', 'refused');
    expect(await provider.getBlockNumber()).toBeGreaterThan(0); // other methods still pass
    await expect(provider.broadcastTransaction(await transfer(sender, nonce + 1, sender.address))).rejects.toBeTruthy();
    await expect(provider.getBlockNumber()).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await chain.faults.down(false);
    expect(await provider.getTransactionCount(sender.address, 'latest')).toBe(nonce + 1); // never reached the node
  });

  it('moves USDT from the treasury and sets balances for funding a host wallet', async () => {
    const host = Wallet.createRandom().address;
    await chain.setBalance(host, 5n * 10n ** 18n);
    await chain.transferUsdt(host, 250_000_000n);
    expect(await provider.getBalance(host)).toBe(5n * 10n ** 18n);
    expect(await new Contract(chain.usdt.address, USDT_ABI, provider).getFunction('balanceOf')(host)).toBe(250_000_000n);
  });

  it('mines on an interval instead when asked, and mine() adds blocks', async () => {
    // A long interval: a sent transaction is not mined on its own (no automine) until mine() makes blocks.
    // (With a short one, whether a block falls between the send and the next call is a race.)
    const slow = await startLocalChain({ intervalMs: 600_000, accounts: 2 });
    try {
      const sender = new Wallet(slow.accounts[0]!.privateKey);
      const raw = await sender.signTransaction({ type: 2, chainId: slow.chainId, nonce: 0, to: sender.address, gasLimit: 21_000n, maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 10n ** 9n });
      const hash = await slow.request<string>('eth_sendRawTransaction', [raw]);
      expect(await slow.request('eth_getTransactionReceipt', [hash])).toBeNull();
      const before = await slow.blockNumber();
      await slow.mine(5);
      expect(await slow.blockNumber()).toBeGreaterThanOrEqual(before + 5);
      expect(await slow.request('eth_getTransactionReceipt', [hash])).toMatchObject({ status: '0x1' });
    } finally {
      await slow.close();
    }
    // A short interval: blocks come by themselves.
    const timed = await startLocalChain({ intervalMs: 20, accounts: 1 });
    try {
      const now = await timed.blockNumber();
      await timed.waitForBlock(now + 2);
      expect(await timed.blockNumber()).toBeGreaterThanOrEqual(now + 2);
    } finally {
      await timed.close();
    }
  });
});
