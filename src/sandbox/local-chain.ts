import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ContractDecoder,
  EdrContext,
  L1_CHAIN_TYPE,
  l1GenesisState,
  l1HardforkFromString,
  l1ProviderFactory,
  type MineOrdering,
  type Provider,
} from '@nomicfoundation/edr';
import { AbiCoder, getBytes, getCreateAddress, HDNodeWallet, Interface, Wallet } from 'ethers';
import { USDT_ABI, USDT_BYTECODE, USDT_DECIMALS } from './usdt.contract.js';

// A real EVM (Nomic's EDR, the engine inside Hardhat) in this process, behind a plain JSON-RPC over
// HTTP endpoint on 127.0.0.1, so the service and ethers talk to it exactly as to a node at ETH_RPC_URL.
// Sandbox and tests only: EDR is a dev dependency, so load this module with a dynamic import.
//
// "Automine" here means: after every accepted eth_sendRawTransaction / eth_sendTransaction the endpoint
// mines a block before it answers. EDR's own automine rejects a transaction whose nonce leaves a gap
// ("can't be queued when automining"), which a real node never does; concurrent senders broadcast out of
// nonce order, so the pool has to queue them as geth's does, and this way it does.

/** The well-known development mnemonic (Hardhat's and Anvil's): deterministic, public, worthless keys. */
const MNEMONIC = 'test test test test test test test test test test test junk';
const HARDFORK = 'prague';
const GWEI = 1_000_000_000n;
const MAX_BODY_BYTES = 10 * 1024 * 1024;

export interface LocalChainOptions {
  chainId?: number;
  /** Pre-funded accounts; the last one is the USDT treasury. Default 10. */
  accounts?: number;
  /** Each account's starting balance. Default 10,000 ETH. */
  accountBalanceWei?: bigint;
  /** USDT minted to the treasury, in 10^-6 units. Default one billion USDT. */
  usdtSupply?: bigint;
  /** Mine a block every this many ms instead of one per transaction. */
  intervalMs?: number;
  /** Listen port on 127.0.0.1; default a free one. */
  port?: number;
}

export interface LocalAccount {
  address: string;
  privateKey: string;
}

export interface LocalChainFaults {
  /** While on, the endpoint is unreachable: 'refused' closes the port, '503' answers Service Unavailable. */
  down(on: boolean, how?: 'refused' | '503'): Promise<void>;
  /** The next n requests carrying eth_sendRawTransaction reach the node, then the connection is cut before the answer. */
  dropNextSendRawTransaction(n?: number): void;
  /** The endpoint goes down (as down(true, how)) when the next request carrying `method` arrives, before the node sees it. */
  downOn(method: string, how?: 'refused' | '503'): void;
}

export interface LocalChain {
  rpcUrl: string;
  chainId: number;
  accounts: LocalAccount[];
  usdt: { address: string; decimals: number; treasury: LocalAccount };
  faults: LocalChainFaults;
  /** Calls the node directly, past the HTTP endpoint and its faults; a JSON-RPC error is thrown. */
  request<T = unknown>(method: string, params?: unknown[]): Promise<T>;
  mine(blocks?: number): Promise<void>;
  blockNumber(): Promise<number>;
  /** Resolves once block `number` exists; rejects after timeoutMs (a bounded wait on the node's newHeads). */
  waitForBlock(number: number, timeoutMs?: number): Promise<void>;
  /** Sets an address's ETH balance (hardhat_setBalance). */
  setBalance(address: string, wei: bigint): Promise<void>;
  /** Sends USDT from the treasury and waits until it is mined; returns the transaction hash. */
  transferUsdt(to: string, amount: bigint): Promise<string>;
  close(): Promise<void>;
}

interface RpcRequest { id?: unknown; method?: unknown }

let context: Promise<EdrContext> | null = null;

/** EDR wants one context per process; every local chain shares it. */
function edrContext(): Promise<EdrContext> {
  context ??= (async () => {
    const ctx = new EdrContext();
    await ctx.registerProviderFactory(L1_CHAIN_TYPE, l1ProviderFactory());
    return ctx;
  })();
  return context;
}

export async function startLocalChain(options: LocalChainOptions = {}): Promise<LocalChain> {
  const chainId = options.chainId ?? 31337;
  const root = HDNodeWallet.fromPhrase(MNEMONIC, undefined, "m/44'/60'/0'/0");
  const accounts: LocalAccount[] = Array.from({ length: options.accounts ?? 10 }, (_, i) => {
    const child = root.deriveChild(i);
    return { address: child.address, privateKey: child.privateKey };
  });
  const treasury = accounts.at(-1);
  if (!treasury) throw new Error('startLocalChain needs at least one account');
  const balance = options.accountBalanceWei ?? 10_000n * 10n ** 18n;
  const listeners = new Set<() => void>();

  const ctx = await edrContext();
  const provider: Provider = await ctx.createProvider(
    L1_CHAIN_TYPE,
    {
      allowBlocksWithSameTimestamp: true, // one block per transaction must not push block time into the future
      allowUnlimitedContractSize: false,
      bailOnCallFailure: false,
      bailOnTransactionFailure: false,
      chainId: BigInt(chainId),
      coinbase: getBytes('0xc014ba5ec014ba5ec014ba5ec014ba5ec014ba5e'),
      defaultTransactionGasLimit: 30_000_000n,
      genesisState: [
        ...l1GenesisState(l1HardforkFromString(HARDFORK)),
        ...accounts.map((a) => ({ address: getBytes(a.address), balance })),
      ],
      hardfork: HARDFORK,
      initialBaseFeePerGas: GWEI,
      minGasPrice: 0n,
      mining: {
        autoMine: false,
        ...(options.intervalMs ? { interval: BigInt(options.intervalMs) } : {}),
        memPool: { order: 'Priority' as MineOrdering },
      },
      network: { genesisBlockGasLimit: 30_000_000n },
      networkId: BigInt(chainId),
      observability: {},
      ownedAccounts: [],
      precompileOverrides: [],
    },
    { enable: false, decodeConsoleLogInputsCallback: () => [], printLineCallback: () => {} },
    { subscriptionCallback: () => listeners.forEach((listener) => listener()) },
    new ContractDecoder(),
  );
  const automine = !options.intervalMs;

  let nextId = 1;
  /** One JSON-RPC call to EDR; the answer is EDR's JSON text ({"result":..} or {"error":..}, no id). */
  async function call(method: string, params: unknown, id: unknown = nextId++): Promise<string> {
    const response = await provider.handleRequest(JSON.stringify({ jsonrpc: '2.0', id, method, params: params ?? [] }));
    const text: string = typeof response.data === 'string' ? response.data : JSON.stringify(response.data);
    if (automine && (method === 'eth_sendRawTransaction' || method === 'eth_sendTransaction') && text.startsWith('{"result"')) {
      await provider.handleRequest(JSON.stringify({ jsonrpc: '2.0', id: nextId++, method: 'evm_mine', params: [] }));
    }
    return text;
  }

  async function request<T>(method: string, params: unknown[] = []): Promise<T> {
    const answer = JSON.parse(await call(method, params)) as { result?: T; error?: { code: number; message: string } };
    if (answer.error) throw Object.assign(new Error(answer.error.message), { code: answer.error.code });
    return answer.result as T;
  }

  async function answerOne(body: RpcRequest): Promise<string> {
    const id = JSON.stringify(body.id ?? null);
    if (typeof body.method !== 'string') return `{"jsonrpc":"2.0","id":${id},"error":{"code":-32600,"message":"Invalid request"}}`;
    const text = await call(body.method, (body as { params?: unknown }).params, body.id);
    return `{"jsonrpc":"2.0","id":${id},${text.slice(1)}`;
  }

  // Faults, for tests.
  let downHow: 'refused' | '503' | null = null;
  let dropSends = 0;
  let trip: { method: string; how: 'refused' | '503' } | null = null;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (downHow === '503') {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('service unavailable');
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        res.writeHead(413).end();
        return;
      }
      chunks.push(chunk);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}');
      return;
    }
    const batch = Array.isArray(parsed) ? (parsed as RpcRequest[]) : null;
    const items = batch ?? [parsed as RpcRequest];
    if (trip && items.some((item) => item?.method === trip?.method)) {
      const { how } = trip;
      trip = null;
      if (how === '503') {
        downHow = '503';
        res.writeHead(503, { 'content-type': 'text/plain' }).end('service unavailable');
      } else {
        req.socket.destroy();
        await faults.down(true, 'refused');
      }
      return;
    }
    // Calls of one batch run in order, as one client's requests would.
    const answers: string[] = [];
    for (const item of items) answers.push(await answerOne(item ?? {}));
    if (dropSends > 0 && items.some((item) => item?.method === 'eth_sendRawTransaction')) {
      dropSends -= 1;
      req.socket.destroy(); // the node has the transaction; the client never learns it
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(batch ? `[${answers.join(',')}]` : answers[0]);
  }

  const faults: LocalChainFaults = {
    async down(on, how = 'refused') {
      const was = downHow;
      downHow = on ? how : null;
      if (on && how === 'refused' && was !== 'refused') await stop();
      if (!on && was === 'refused') await listen(port);
      if (!on) trip = null;
    },
    dropNextSendRawTransaction(n = 1) {
      dropSends += n;
    },
    downOn(method, how = '503') {
      trip = { method, how };
    },
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end(String(error));
    });
  });
  const listen = (port: number) => new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const stop = () => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  await listen(options.port ?? 0);
  const port = (server.address() as AddressInfo).port;
  await request('eth_subscribe', ['newHeads']);

  async function blockNumber(): Promise<number> {
    return Number(await request<string>('eth_blockNumber'));
  }

  async function mine(blocks = 1): Promise<void> {
    await request('hardhat_mine', [`0x${blocks.toString(16)}`]);
  }

  function waitForBlock(number: number, timeoutMs = 10_000): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        blockNumber().then((n) => {
          if (n >= number) done(null);
        }, done);
      };
      const timer = setTimeout(() => done(new Error(`block ${number} not mined within ${timeoutMs} ms`)), timeoutMs);
      function done(error: unknown) {
        clearTimeout(timer);
        listeners.delete(check);
        if (error) reject(error instanceof Error ? error : new Error(String(error)));
        else resolve();
      }
      listeners.add(check);
      check();
    });
  }

  /** Signs with a local key and sends past the endpoint's faults; waits until mined. */
  async function sendSigned(key: string, tx: { to?: string; data: string; gasLimit: bigint }): Promise<string> {
    const signer = new Wallet(key);
    const nonce = Number(await request<string>('eth_getTransactionCount', [signer.address, 'pending']));
    const raw = await signer.signTransaction({
      type: 2, chainId, nonce, maxFeePerGas: 100n * GWEI, maxPriorityFeePerGas: GWEI, value: 0n, ...tx,
    });
    const hash = await request<string>('eth_sendRawTransaction', [raw]);
    if (!automine) await mine();
    const receipt = await request<{ status: string } | null>('eth_getTransactionReceipt', [hash]);
    if (receipt?.status !== '0x1') throw new Error(`local chain: transaction ${hash} failed`);
    return hash;
  }

  // The USDT stand-in: the treasury deploys it with its first transaction and holds the whole supply.
  const usdtSupply = options.usdtSupply ?? 1_000_000_000n * 10n ** BigInt(USDT_DECIMALS);
  const usdtAddress = getCreateAddress({
    from: treasury.address,
    nonce: Number(await request<string>('eth_getTransactionCount', [treasury.address, 'pending'])),
  });
  const ctorArgs = AbiCoder.defaultAbiCoder().encode(['address', 'uint256'], [treasury.address, usdtSupply]);
  await sendSigned(treasury.privateKey, { data: USDT_BYTECODE + ctorArgs.slice(2), gasLimit: 3_000_000n });
  const usdtInterface = new Interface(USDT_ABI);

  // Treasury transfers share one nonce sequence: one at a time.
  let treasuryQueue: Promise<unknown> = Promise.resolve();

  return {
    rpcUrl: `http://127.0.0.1:${port}`,
    chainId,
    accounts,
    usdt: { address: usdtAddress, decimals: USDT_DECIMALS, treasury },
    faults,
    request,
    mine,
    blockNumber,
    waitForBlock,
    async setBalance(address, wei) {
      await request('hardhat_setBalance', [address, `0x${wei.toString(16)}`]);
    },
    transferUsdt(to, amount) {
      const data = usdtInterface.encodeFunctionData('transfer', [to, amount]);
      const sent = treasuryQueue.then(() => sendSigned(treasury.privateKey, { to: usdtAddress, data, gasLimit: 100_000n }));
      treasuryQueue = sent.catch(() => {});
      return sent;
    },
    async close() {
      listeners.clear();
      downHow = null;
      if (server.listening) await stop();
      // Interval mining runs inside EDR; turning it off lets the provider be collected.
      if (!automine) await request('evm_setIntervalMining', [0]).catch(() => {});
    },
  };
}
