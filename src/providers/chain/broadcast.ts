import type { JsonRpcProvider } from 'ethers';
import type pg from 'pg';
import type { Logger } from 'pino';
import { ChainError, classifyBroadcastError, describeError, type ChainEvidence } from './chain.errors.js';
import { markBroadcast, recordBroadcastError, type ChainTx } from './chain-transactions.repo.js';

// Broadcasting a stored, signed transaction: the only way anything the host wallet signed reaches a
// node. It can be repeated any number of times: the bytes, hence the hash, are always the same.
//
//   accepted                                   -> broadcast_at recorded
//   "already known", "nonce too low",          -> look the hash up: the node has it (pending or mined) ->
//   "replacement transaction underpriced"         as accepted; it does not and the nonce is used by
//                                                 something else -> fate_unknown (never re-signed: a person
//                                                 decides, with the evidence)
//   no answer (refused, reset, timeout, 5xx)   -> unavailable, retryable: the retry re-broadcasts these bytes
//   "nonce too high"                           -> unavailable, retryable: earlier nonces are not there yet
//   insufficient funds                         -> insufficient_funds, not retryable until someone funds the wallet
//   gas too low, anything else                 -> rejected, not retryable

/** Whether the node knows the transaction, pending or mined. */
async function nodeHas(provider: JsonRpcProvider, txHash: string): Promise<boolean> {
  const [tx, receipt] = await Promise.all([provider.getTransaction(txHash), provider.getTransactionReceipt(txHash)]);
  return tx !== null || receipt !== null;
}

export async function broadcastStored(pool: pg.Pool, provider: JsonRpcProvider, row: ChainTx, log: Logger): Promise<void> {
  const evidence: ChainEvidence = { txKey: row.txKey, txHash: row.txHash, nonce: row.nonce };
  let answer: unknown = null;
  try {
    await provider.broadcastTransaction(row.rawTx);
  } catch (error) {
    answer = error ?? new Error('broadcast failed');
  }
  if (answer === null) {
    await markBroadcast(pool, row.txKey);
    log.info(evidence, 'chain transaction broadcast');
    return;
  }

  const verdict = classifyBroadcastError(answer);
  const nodeAnswer = describeError(answer);
  const withAnswer = { ...evidence, nodeAnswer };

  if (verdict === 'already_known' || verdict === 'nonce_too_low' || verdict === 'underpriced_replacement') {
    let known: boolean;
    try {
      known = await nodeHas(provider, row.txHash);
    } catch (lookupError) {
      await recordBroadcastError(pool, row.txKey, `${nodeAnswer}; lookup failed: ${describeError(lookupError)}`);
      throw new ChainError('unavailable', true, `broadcast answered "${nodeAnswer}" and the lookup of ${row.txHash} failed`, withAnswer);
    }
    if (known) {
      await markBroadcast(pool, row.txKey);
      log.info(withAnswer, 'chain transaction already at the node');
      return;
    }
    await recordBroadcastError(pool, row.txKey, nodeAnswer);
    if (verdict === 'already_known') {
      // The node says it has it but cannot find it (a load balancer between two nodes, say): ask again later.
      throw new ChainError('unavailable', true, `the node says it knows ${row.txHash} but cannot find it`, withAnswer);
    }
    log.error(withAnswer, 'chain transaction nonce taken by another transaction: fate unknown, needs a person');
    throw new ChainError('fate_unknown', false, `nonce ${row.nonce} is used by another transaction and the node does not know ${row.txHash}`, withAnswer);
  }

  await recordBroadcastError(pool, row.txKey, nodeAnswer);
  log.warn({ ...withAnswer, verdict }, 'chain transaction broadcast failed');
  switch (verdict) {
    case 'unavailable':
      throw new ChainError('unavailable', true, `broadcast of ${row.txHash}: no answer from the node (${nodeAnswer})`, withAnswer);
    case 'nonce_too_high':
      throw new ChainError('unavailable', true, `broadcast of ${row.txHash}: the node does not see the earlier nonces yet`, withAnswer);
    case 'insufficient_funds':
      throw new ChainError('insufficient_funds', false, `broadcast of ${row.txHash}: the wallet cannot pay for it`, withAnswer);
    case 'gas_too_low':
      throw new ChainError('rejected', false, `broadcast of ${row.txHash}: gas limit too low`, withAnswer);
    default:
      throw new ChainError('rejected', false, `broadcast of ${row.txHash} refused: ${nodeAnswer}`, withAnswer);
  }
}
