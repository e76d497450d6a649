import { JsonRpcProvider, Wallet } from 'ethers';
import type { Logger } from 'pino';
import { toBaseUnits } from '../domain/units.js';
import { startFakeChangeNow, type FakeChangeNow } from './changenow.fake.js';
import type { FakeExchange } from './changenow.fake.model.js';
import type { LocalChain } from './local-chain.js';

// Sandbox mode for payouts (no ChangeNow key, RPC URL or host wallet key, not production): a real local
// EVM chain (EDR) answers JSON-RPC on loopback, the host wallet is a fresh key funded on it, and the fake
// ChangeNow watches the chain: an exchange counts as funded once its pay-in address holds the expected
// ETH, and when it finishes it pays the owner on the same chain (USDT from the stand-in token's treasury,
// ETH from a "ChangeNow" account), so every payout ends with real transaction hashes.
//
// The host key is new on every start: the chain lives in memory and starts empty, while the embedded
// Postgres keeps the nonces of the last run's key.

export interface SandboxPayouts {
  chain: LocalChain;
  changeNow: FakeChangeNow;
  hostPrivateKey: string;
  hostAddress: string;
  stop(): Promise<void>;
}

const HOST_FUNDING_WEI = 1_000n * 10n ** 18n;

export async function startSandboxPayouts(options: { log?: Logger; changeNow?: Parameters<typeof startFakeChangeNow>[0] } = {}): Promise<SandboxPayouts> {
  // EDR is a development dependency: loaded only here, so a production image never needs it.
  const { startLocalChain } = await import('./local-chain.js');
  const chain = await startLocalChain();
  const host = Wallet.createRandom();
  await chain.setBalance(host.address, HOST_FUNDING_WEI);
  // "ChangeNow's" own hot wallet on the local chain, paying owners their ETH.
  const exchanger = new Wallet(chain.accounts[8]!.privateKey, new JsonRpcProvider(chain.rpcUrl, chain.chainId, { staticNetwork: true, cacheTimeout: -1 }));

  // One payout at a time from that account: concurrent sends would race for the same nonce.
  let queue: Promise<unknown> = Promise.resolve();
  const serially = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work, work);
    queue = run.catch(() => {});
    return run;
  };

  const balanceOf = async (address: string) => BigInt(await chain.request<string>('eth_getBalance', [address, 'latest']));
  const payOwner = async (exchange: FakeExchange): Promise<string> => {
    const to = exchange.payoutAddress;
    if (exchange.toCurrency === 'usdt' && exchange.toNetwork === 'eth') return serially(() => chain.transferUsdt(to, toBaseUnits(exchange.expectedAmountTo, chain.usdt.decimals)));
    if (exchange.toCurrency === 'eth' && exchange.toNetwork === 'eth') {
      return serially(async () => {
        const tx = await exchanger.sendTransaction({ to, value: toBaseUnits(exchange.expectedAmountTo, 18) });
        await tx.wait();
        return tx.hash;
      });
    }
    // Another coin or network: nothing on this chain can carry it; a made-up hash stands in.
    return `0x${Buffer.from(`${exchange.id}:${to}`).toString('hex').padEnd(64, '0').slice(0, 64)}`;
  };

  const changeNow = await startFakeChangeNow({
    isFunded: async (payinAddress, expectedFromAmount) => (await balanceOf(payinAddress)) >= toBaseUnits(expectedFromAmount, 18),
    payout: payOwner,
    ...options.changeNow,
  });
  options.log?.warn({ rpcUrl: chain.rpcUrl, changeNowUrl: changeNow.baseUrl, hostWallet: host.address }, 'SANDBOX: no payout credentials; owners are paid on a local EVM chain through a simulated ChangeNow, nothing is real');
  return {
    chain,
    changeNow,
    hostPrivateKey: host.privateKey,
    hostAddress: host.address,
    async stop() {
      exchanger.provider?.destroy();
      await changeNow.close();
      await chain.close();
    },
  };
}
