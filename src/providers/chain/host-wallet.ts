import { getAddress, keccak256, Wallet, ZeroAddress, type JsonRpcProvider } from 'ethers';
import type pg from 'pg';
import type { Logger } from 'pino';
import { inTransaction } from '../../persistence/transaction.js';
import { ERC20, lazyConnection, suggestFees, type Fees } from './chain-rpc.js';
import { broadcastStored } from './broadcast.js';
import { ChainError, readError } from './chain.errors.js';
import { findChainTx, findUnbroadcastBelow, insertChainTx, recordReceipt, type ChainTx } from './chain-transactions.repo.js';
import { allocateNonce } from './nonce.repo.js';

// The host wallet sends each caller key's transaction exactly once:
//   1. a key that has a row is re-broadcast from its stored raw bytes; nothing is signed again;
//   2. otherwise fees, gas, balances and the node's pending count are read first, outside any transaction;
//   3. one Postgres transaction takes the nonce under the host_wallets row lock, signs locally (type 2,
//      explicit nonce and gas limit), stores the raw transaction and its hash, and commits;
//   4. only then the raw transaction is broadcast (see broadcast.ts for what each answer means).
// A crash anywhere leaves either nothing (nothing was signed) or a stored transaction that the next
// send for the key broadcasts. The private key stays inside the ethers Wallet in this closure: it is
// never logged, stored or put into an error.
//
// Insufficient funds: balances are checked in step 2, before a nonce is taken, so the common case
// burns no nonce. If funds vanish between the check and the broadcast (a concurrent send), the stored
// transaction keeps its nonce and later ones queue behind it at the node; funding the wallet and
// sending the same key again broadcasts it and releases the queue (a later send also re-broadcasts it,
// see healGaps). A signed transaction is never thrown away: it may be in some node's pool.

const ETH_TRANSFER_GAS = 21_000n;

export type SendRequest = { to: string; valueWei: bigint } | { token: string; to: string; amount: bigint };

export interface SendResult {
  txHash: string;
  nonce: number;
  /** True when the key already had a transaction: its stored bytes were broadcast again (or it was mined). */
  rebroadcast: boolean;
}

export type TxStatus =
  | { state: 'unknown_key' }
  | { state: 'pending'; txHash: string; blockNumber?: number; confirmations: number }
  | { state: 'confirmed'; txHash: string; blockNumber: number; confirmations: number }
  | { state: 'reverted'; txHash: string; blockNumber: number; confirmations: number };

export interface HostWalletOptions {
  pool: pg.Pool;
  rpcUrl: string;
  privateKey: string;
  /** When set, the node must be on this chain or nothing is signed. Default: the node's. */
  chainId?: number;
  /** Gas limit for ERC-20 transfers. Default: the node's estimate plus 20 %. */
  gasLimit?: bigint;
  /** Highest maxFeePerGas ever signed. */
  maxFeePerGasCap?: bigint;
  log: Logger;
  /** One JSON-RPC request gives up after this long. Default 10 s. */
  rpcTimeoutMs?: number;
  /** An earlier transaction never acknowledged by a node for this long is re-broadcast by later sends. Default 30 s. */
  gapGraceMs?: number;
}

export interface HostWallet {
  readonly address: string;
  send(txKey: string, request: SendRequest): Promise<SendResult>;
  status(txKey: string, confirmations?: number): Promise<TxStatus>;
  balanceOf(address: string): Promise<bigint>;
  tokenBalanceOf(token: string, address: string): Promise<bigint>;
  /** Stops the provider; pending calls fail. */
  close(): void;
}

/** What is being paid, normalised: the row's columns and the transaction's own to/value/data. */
interface Intent {
  toAddress: string;
  valueWei: bigint;
  tokenAddress: string | null;
  tokenAmount: bigint | null;
  txTo: string;
  data: string;
}

interface Prepared extends Fees {
  chainId: number;
  gasLimit: bigint;
  nodePendingCount: number;
}

/** Thrown inside the signing transaction to roll it back when the key turned out to be taken. */
class KeyTaken extends Error {}

function address(value: string, what: string): string {
  try {
    const checksummed = getAddress(value);
    if (checksummed === ZeroAddress) throw new Error('zero address');
    return checksummed;
  } catch {
    throw new ChainError('rejected', false, `${what} is not a valid address: ${JSON.stringify(value)}`);
  }
}

function toIntent(request: SendRequest): Intent {
  const to = address(request.to, 'to');
  if ('token' in request) {
    if (typeof request.amount !== 'bigint' || request.amount <= 0n) throw new ChainError('rejected', false, 'amount must be a positive bigint');
    const token = address(request.token, 'token');
    return { toAddress: to, valueWei: 0n, tokenAddress: token, tokenAmount: request.amount, txTo: token, data: ERC20.encodeFunctionData('transfer', [to, request.amount]) };
  }
  if (typeof request.valueWei !== 'bigint' || request.valueWei < 0n) throw new ChainError('rejected', false, 'valueWei must be a non-negative bigint');
  return { toAddress: to, valueWei: request.valueWei, tokenAddress: null, tokenAmount: null, txTo: to, data: '0x' };
}

function sameIntent(row: ChainTx, intent: Intent): boolean {
  return row.toAddress === intent.toAddress && row.valueWei === intent.valueWei
    && row.tokenAddress === intent.tokenAddress && row.tokenAmount === intent.tokenAmount;
}

export function createHostWallet(options: HostWalletOptions): HostWallet {
  // Only what is needed is kept: the options object (which holds the key) is not captured below.
  const { pool, log, gasLimit: tokenGasLimit, maxFeePerGasCap } = options;
  let signer: Wallet;
  try {
    signer = new Wallet(options.privateKey);
  } catch {
    throw new ChainError('rejected', false, 'the host wallet private key is not a valid secp256k1 key'); // never echo it
  }
  const from = signer.address;
  const connection = lazyConnection(options.rpcUrl, options.chainId, options.rpcTimeoutMs ?? 10_000);
  const gapGraceMs = options.gapGraceMs ?? 30_000;
  const wlog = log.child({ component: 'host-wallet', from });

  async function read<T>(what: string, work: (provider: JsonRpcProvider) => Promise<T>): Promise<T> {
    const { provider } = await connection.connect();
    try {
      return await work(provider);
    } catch (error) {
      throw readError(what, error);
    }
  }

  async function tokenBalanceOf(token: string, owner: string): Promise<bigint> {
    return read('token balance', async (provider) => {
      const data = await provider.call({ to: address(token, 'token'), data: ERC20.encodeFunctionData('balanceOf', [address(owner, 'owner')]) });
      return ERC20.decodeFunctionResult('balanceOf', data)[0] as bigint;
    });
  }

  /** Everything the node has to tell before a nonce is taken. Nothing here writes. */
  async function prepare(intent: Intent): Promise<Prepared> {
    const { chainId } = await connection.connect();
    return read('preparing the transaction', async (provider) => {
      const [fees, nodePendingCount, balance] = await Promise.all([
        suggestFees(provider, maxFeePerGasCap),
        provider.getTransactionCount(from, 'pending'),
        provider.getBalance(from, 'pending'),
      ]);
      let gasLimit: bigint;
      if (intent.tokenAddress !== null && intent.tokenAmount !== null) {
        const tokens = await tokenBalanceOf(intent.tokenAddress, from);
        if (tokens < intent.tokenAmount) {
          throw new ChainError('insufficient_funds', false, `token balance ${tokens} is below ${intent.tokenAmount} (token ${intent.tokenAddress})`);
        }
        gasLimit = tokenGasLimit ?? ((await provider.estimateGas({ from, to: intent.txTo, data: intent.data })) * 6n) / 5n;
      } else {
        // A contract recipient (a multisig, say) needs more than a plain transfer's 21,000 gas.
        const code = await provider.getCode(intent.txTo);
        gasLimit = code === '0x' ? ETH_TRANSFER_GAS : ((await provider.estimateGas({ from, to: intent.txTo, value: intent.valueWei })) * 6n) / 5n;
      }
      const needed = intent.valueWei + gasLimit * fees.maxFeePerGas;
      if (balance < needed) {
        throw new ChainError('insufficient_funds', false, `ETH balance ${balance} wei is below the ${needed} wei this transaction may cost`);
      }
      return { chainId, gasLimit, nodePendingCount, ...fees };
    });
  }

  /** Step 3: nonce, signature and row in one transaction. Returns the stored row, or the key's existing row. */
  async function signAndPersist(txKey: string, intent: Intent, prepared: Prepared): Promise<{ row: ChainTx; inserted: boolean }> {
    try {
      const row = await inTransaction(pool, async (client) => {
        // The lock on the wallet's row serializes this wallet's senders; whoever held it before us has
        // committed, so a row they stored for this key is visible now.
        const nonce = await allocateNonce(client, from, prepared.chainId, prepared.nodePendingCount);
        if (await findChainTx(client, txKey)) throw new KeyTaken();
        const rawTx = await signer.signTransaction({
          type: 2,
          chainId: prepared.chainId,
          nonce,
          to: intent.txTo,
          value: intent.valueWei,
          data: intent.data,
          gasLimit: prepared.gasLimit,
          maxFeePerGas: prepared.maxFeePerGas,
          maxPriorityFeePerGas: prepared.maxPriorityFeePerGas,
        });
        const stored = await insertChainTx(client, {
          txKey, fromAddress: from, chainId: prepared.chainId, nonce, rawTx, txHash: keccak256(rawTx),
          toAddress: intent.toAddress, valueWei: intent.valueWei, tokenAddress: intent.tokenAddress, tokenAmount: intent.tokenAmount, data: intent.data,
        });
        if (!stored) throw new KeyTaken(); // taken by another wallet's send of the same key
        return stored;
      });
      wlog.info({ txKey, txHash: row.txHash, nonce: row.nonce }, 'chain transaction signed and stored');
      return { row, inserted: true };
    } catch (error) {
      if (!(error instanceof KeyTaken)) throw error;
      const row = await findChainTx(pool, txKey);
      if (!row) throw new Error(`chain transaction ${txKey} vanished`, { cause: error });
      return { row, inserted: false };
    }
  }

  /**
   * Earlier transactions of this wallet that no node acknowledged (a crash between commit and
   * broadcast) hold every later nonce in the node's queue: broadcast them first. Best effort.
   */
  async function healGaps(provider: JsonRpcProvider, row: ChainTx, nodePendingCount: number): Promise<void> {
    if (nodePendingCount >= row.nonce) return;
    for (const gap of await findUnbroadcastBelow(pool, from, row.chainId, row.nonce, gapGraceMs)) {
      await broadcastStored(pool, provider, gap, wlog).catch((error: unknown) => {
        wlog.warn({ txKey: gap.txKey, txHash: gap.txHash, nonce: gap.nonce, err: error }, 'could not re-broadcast an earlier transaction');
      });
    }
  }

  async function resend(row: ChainTx, intent: Intent): Promise<SendResult> {
    if (!sameIntent(row, intent)) {
      throw new ChainError('rejected', false, `key ${row.txKey} was already used for a different transfer`, { txKey: row.txKey, txHash: row.txHash, nonce: row.nonce });
    }
    if (row.receiptStatus === null) {
      const { provider } = await connection.connect();
      await broadcastStored(pool, provider, row, wlog);
    }
    return { txHash: row.txHash, nonce: row.nonce, rebroadcast: true };
  }

  return {
    address: from,

    async send(txKey, request) {
      if (typeof txKey !== 'string' || txKey.length === 0) throw new ChainError('rejected', false, 'txKey must be a non-empty string');
      const intent = toIntent(request);
      const existing = await findChainTx(pool, txKey);
      if (existing) return resend(existing, intent);
      const prepared = await prepare(intent);
      const { row, inserted } = await signAndPersist(txKey, intent, prepared);
      if (!inserted) return resend(row, intent);
      const { provider } = await connection.connect();
      await healGaps(provider, row, prepared.nodePendingCount);
      await broadcastStored(pool, provider, row, wlog);
      return { txHash: row.txHash, nonce: row.nonce, rebroadcast: false };
    },

    async status(txKey, confirmations = 1) {
      const row = await findChainTx(pool, txKey);
      if (!row) return { state: 'unknown_key' };
      const [receipt, latest] = await read('transaction status', (provider) =>
        Promise.all([provider.getTransactionReceipt(row.txHash), provider.getBlockNumber()]));
      if (!receipt) return { state: 'pending', txHash: row.txHash, confirmations: 0 };
      const status = receipt.status ?? 0;
      await recordReceipt(pool, txKey, status, receipt.blockNumber);
      const seen = Math.max(0, latest - receipt.blockNumber + 1);
      const mined = { txHash: row.txHash, blockNumber: receipt.blockNumber, confirmations: seen };
      if (seen < confirmations) return { state: 'pending', ...mined };
      return status === 1 ? { state: 'confirmed', ...mined } : { state: 'reverted', ...mined };
    },

    balanceOf: (owner) => read('balance', (provider) => provider.getBalance(address(owner, 'owner'))),
    tokenBalanceOf,
    close: () => connection.close(),
  };
}
