import { FetchRequest, Interface, JsonRpcProvider, Network } from 'ethers';
import { ChainError, readError } from './chain.errors.js';

// The ethers side of the host wallet: a JSON-RPC provider that never answers from a cache (ethers'
// default 250 ms cache would hand back-to-back sends the same stale pending count), never runs its
// network-detection loop (which retries every second, forever, while the node is down) and gives up on
// a request after a bounded time instead of ethers' five minutes.

export const ERC20 = new Interface([
  'function transfer(address to, uint256 amount) returns (bool)',
  'function balanceOf(address owner) view returns (uint256)',
]);

export interface ChainConnection {
  provider: JsonRpcProvider;
  chainId: number;
}

function fetchRequest(rpcUrl: string, timeoutMs: number): FetchRequest {
  const request = new FetchRequest(rpcUrl);
  request.timeout = timeoutMs;
  return request;
}

/** Asks the node for its chain id with one plain JSON-RPC call. */
async function fetchChainId(rpcUrl: string, timeoutMs: number): Promise<number> {
  const request = fetchRequest(rpcUrl, timeoutMs);
  request.body = { jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] };
  const response = await request.send();
  response.assertOk();
  const answer = response.bodyJson as { result?: string; error?: { message?: string } };
  if (typeof answer.result !== 'string') throw new Error(`eth_chainId: ${answer.error?.message ?? 'no result'}`);
  return Number(BigInt(answer.result));
}

/**
 * Returns a function giving the connection, made on first use: the node's chain id is read once (and
 * must equal `expectedChainId` when one is configured, or nothing is ever signed), then pinned.
 * A failed attempt is forgotten, so the next call tries again.
 */
export function lazyConnection(rpcUrl: string, expectedChainId: number | undefined, timeoutMs: number): {
  connect(): Promise<ChainConnection>;
  close(): void;
} {
  let pending: Promise<ChainConnection> | null = null;
  let made: ChainConnection | null = null;
  return {
    connect() {
      pending ??= (async () => {
        const chainId = await fetchChainId(rpcUrl, timeoutMs);
        if (expectedChainId !== undefined && chainId !== expectedChainId) {
          throw new ChainError('rejected', false, `the node at the RPC URL is on chain ${chainId}, the wallet is configured for chain ${expectedChainId}`);
        }
        const network = Network.from(chainId);
        const provider = new JsonRpcProvider(fetchRequest(rpcUrl, timeoutMs), network, {
          staticNetwork: network,
          cacheTimeout: -1,
          pollingInterval: 250,
          batchStallTime: 0, // calls made together still share one HTTP request; a lone call does not wait 10 ms
        });
        made = { provider, chainId };
        return made;
      })().catch((error: unknown) => {
        pending = null;
        throw readError('connecting to the node', error);
      });
      return pending;
    },
    close() {
      made?.provider.destroy();
      made = null;
      pending = null;
    },
  };
}

export interface Fees {
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
}

/**
 * EIP-1559 fees: ethers' suggestion (twice the base fee plus the node's tip), clamped to the cap. A cap
 * below what the next block needs (base fee + tip) is refused before any nonce is taken: the same call
 * later, when fees fall, goes through.
 */
export async function suggestFees(provider: JsonRpcProvider, maxFeePerGasCap: bigint | undefined): Promise<Fees> {
  const [feeData, block] = await Promise.all([provider.getFeeData(), provider.getBlock('latest')]);
  const { maxFeePerGas, maxPriorityFeePerGas } = feeData;
  const baseFee = block?.baseFeePerGas;
  if (maxFeePerGas === null || maxPriorityFeePerGas === null || baseFee == null) {
    throw new ChainError('rejected', false, 'the node does not support EIP-1559 fees');
  }
  if (maxFeePerGasCap === undefined || maxFeePerGas <= maxFeePerGasCap) return { maxFeePerGas, maxPriorityFeePerGas };
  const needed = baseFee + maxPriorityFeePerGas;
  if (maxFeePerGasCap < needed) {
    throw new ChainError('fee_above_cap', true, `the network needs ${needed} wei per gas, above the cap of ${maxFeePerGasCap}`);
  }
  return { maxFeePerGas: maxFeePerGasCap, maxPriorityFeePerGas };
}
