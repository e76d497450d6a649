// One error shape for everything the host wallet refuses or cannot do: { kind, retryable }.
// retryable: the same call later may succeed and is safe (a retry re-broadcasts the same signed bytes).
// Not retryable: retrying alone will not help; a person has to look (fund the wallet, read the evidence).

export type ChainErrorKind =
  | 'unavailable' // network error, timeout, 5xx, rate limit, node not ready: retry later
  | 'fee_above_cap' // the network's fee is above maxFeePerGasCap: nothing was signed, retry later
  | 'insufficient_funds' // not enough ETH (value + gas) or tokens
  | 'rejected' // the node refuses the transaction itself (gas too low, ...) or the request is wrong
  | 'fate_unknown'; // our nonce is used but the node does not know our transaction: never re-sign, park it

export interface ChainEvidence {
  txKey?: string;
  txHash?: string;
  nonce?: number;
  /** The node's own words (or the transport error), for the person who looks. */
  nodeAnswer?: string;
}

export class ChainError extends Error {
  override readonly name = 'ChainError';

  constructor(
    readonly kind: ChainErrorKind,
    readonly retryable: boolean,
    message: string,
    readonly evidence: ChainEvidence = {},
  ) {
    super(message);
  }
}

export function isChainError(error: unknown): error is ChainError {
  return error instanceof ChainError;
}

/** What a node's answer to eth_sendRawTransaction means for a transaction we signed. */
export type BroadcastVerdict =
  | 'already_known' // the node has this exact transaction
  | 'nonce_too_low' // the nonce is used: by this transaction (mined) or by another one
  | 'underpriced_replacement' // another transaction with this nonce is pending, or ours is
  | 'nonce_too_high' // the node does not see the earlier nonces yet
  | 'insufficient_funds'
  | 'gas_too_low'
  | 'unavailable' // we do not know whether the node got it
  | 'rejected'; // any other refusal

const UNAVAILABLE = /rate limit|too many requests|timeout|timed out|temporarily|try again|busy|overloaded|unavailable|header not found/i;

// Wordings of geth, erigon, nethermind, besu and EDR/Hardhat.
const PATTERNS: [BroadcastVerdict, RegExp][] = [
  ['already_known', /already known|known transaction|already imported|alreadyknown|transaction already exists/i],
  ['nonce_too_low', /nonce too low|nonce has already been used|oldnonce|nonce is too low|invalid transaction nonce/i],
  ['underpriced_replacement', /replacement transaction underpriced|replacement.*underpriced|replacementnotallowed/i],
  ['nonce_too_high', /nonce too high|noncegap|nonce gap/i],
  ['insufficient_funds', /insufficient funds|doesn't have enough funds|insufficientfunds|not enough balance/i],
  ['gas_too_low', /intrinsic gas too low|gas too low|requires at least \d+ gas|intrinsicgas/i],
  ['unavailable', UNAVAILABLE],
];

const TRANSPORT_CODES = new Set([
  'NETWORK_ERROR', 'SERVER_ERROR', 'TIMEOUT', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH',
  'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'ABORT_ERR', 'CANCELLED',
]);

interface ErrorLike {
  code?: unknown;
  message?: unknown;
  shortMessage?: unknown;
  error?: { message?: unknown };
  info?: { error?: { message?: unknown } };
}

/** The JSON-RPC error message from the node, when the node answered with one (ethers puts it in error / info.error). */
export function nodeMessage(error: unknown): string | null {
  const e = error as ErrorLike | null;
  const message = e?.info?.error?.message ?? e?.error?.message;
  return typeof message === 'string' ? message : null;
}

/** A short description of what went wrong, safe to store and log (no request bodies, no keys). */
export function describeError(error: unknown): string {
  const e = error as ErrorLike | null;
  const fromNode = nodeMessage(error);
  if (fromNode) return `node: ${fromNode}`;
  const code = typeof e?.code === 'string' ? `${e.code}: ` : '';
  const text = typeof e?.shortMessage === 'string' ? e.shortMessage : typeof e?.message === 'string' ? e.message : String(error);
  return (code + text).slice(0, 500);
}

/** Classifies a failed eth_sendRawTransaction (as thrown by ethers) by what the node said, not by ethers' guess. */
export function classifyBroadcastError(error: unknown): BroadcastVerdict {
  const fromNode = nodeMessage(error);
  if (fromNode === null) {
    // No JSON-RPC answer: the request or its answer was lost (refused, reset, timeout, 5xx, garbage).
    return 'unavailable';
  }
  for (const [verdict, pattern] of PATTERNS) if (pattern.test(fromNode)) return verdict;
  return 'rejected';
}

/** Whether an error from a read (fee data, balance, receipt) is the transport's rather than a refusal. */
export function isTransportError(error: unknown): boolean {
  const code = (error as ErrorLike | null)?.code;
  if (typeof code === 'string' && TRANSPORT_CODES.has(code)) return true;
  const fromNode = nodeMessage(error);
  return fromNode === null || UNAVAILABLE.test(fromNode);
}

/** Turns an error from a read into a ChainError: transport failures are retryable 'unavailable'. */
export function readError(what: string, error: unknown, evidence: ChainEvidence = {}): ChainError {
  if (isChainError(error)) return error;
  const nodeAnswer = describeError(error);
  if (isTransportError(error)) return new ChainError('unavailable', true, `${what}: the node could not be reached (${nodeAnswer})`, { ...evidence, nodeAnswer });
  return new ChainError('rejected', false, `${what}: the node refused (${nodeAnswer})`, { ...evidence, nodeAnswer });
}
