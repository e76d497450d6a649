import type pg from 'pg';
import type { Logger } from 'pino';
import { isRetryable } from '../domain/errors.js';
import { countProviderError } from '../operator/metrics.js';
import { HOST_ASSET } from '../domain/payout-plan.js';
import { fromBaseUnits } from '../domain/units.js';
import type { HostWallet } from '../providers/chain/host-wallet.js';
import type { ChangeNowClient, ChangeNowPair } from '../providers/changenow/changenow.client.js';
import { inTransaction } from '../persistence/transaction.js';
import { recordPayout } from './ledger.repo.js';
import { findPayout, markReview, markSettled, recordExchange, recordExchangeStatus, recordSent, type Payout } from './payouts.repo.js';

// The one money path, shared by instant payouts and threshold batches:
//
//   exchange  (skipped when the owner is paid in ETH) ChangeNow fixed-rate estimate, then POST /exchange;
//             id, pay-in address and amounts stored before anything is funded
//   send      the host wallet signs a transaction to the pay-in address (or the owner), stores it under
//             the key 'payout:<id>' and only then broadcasts it; a retry re-broadcasts those stored bytes
//   settle    the receipt with enough confirmations, then the exchange followed to 'finished'; the
//             ledger's payout entry and the payout's 'settled' mark commit together
//
// Each step starts by reading what the payout row already holds, so a retry after a crash at any point
// resumes there. What is retried: provider outages and "not yet" (the error is thrown and the job retries
// with backoff). What is never retried: anything whose outcome is unknown or refused (a fate-unknown
// broadcast, a reverted transaction, a failed or refunded exchange) — the payout is parked with the
// evidence and waits for a person.

export interface PayoutExecutorDeps {
  pool: pg.Pool;
  changeNow: ChangeNowClient;
  wallet: HostWallet;
  /** Blocks on top of the one that mined the transaction before it counts as settled. */
  confirmations: number;
  log: Logger;
}

export type SendOutcome = { outcome: 'sent'; payout: Payout } | { outcome: 'review'; reason: string; payout: Payout };
export type SettleOutcome = { outcome: 'settled'; payout: Payout } | { outcome: 'review'; reason: string; payout: Payout };

/** A step that has not happened yet (no receipt, exchange still converting): the job retries later. */
export class NotYet extends Error {
  override name = 'NotYet';
  readonly retryable = true;
}

const pairOf = (payout: Payout): ChangeNowPair => ({
  fromCurrency: HOST_ASSET.currency,
  fromNetwork: HOST_ASSET.network,
  toCurrency: payout.toCurrency.toLowerCase(),
  toNetwork: payout.toNetwork.toLowerCase(),
});

export const payoutTxKey = (payoutId: string): string => `payout:${payoutId}`;

export function createPayoutExecutor(deps: PayoutExecutorDeps) {
  const { pool, changeNow, wallet } = deps;

  async function park(payout: Payout, reason: string): Promise<{ outcome: 'review'; reason: string; payout: Payout }> {
    deps.log.warn({ payoutId: payout.payoutId, reason }, 'payout parked for review');
    return { outcome: 'review', reason, payout: await markReview(pool, payout.payoutId, reason) };
  }

  /** A provider refusal that retrying cannot fix parks the payout; anything retryable is rethrown for the job to retry. */
  async function parkOrRethrow(payout: Payout, step: string, error: unknown) {
    // Rethrown errors are counted by the job runner; a refusal that parks is counted here.
    if (isRetryable(error)) throw error;
    countProviderError(error);
    const evidence = (error as { evidence?: unknown }).evidence;
    return park(payout, `${step}: ${(error as Error).message}${evidence ? ` (evidence: ${JSON.stringify(evidence)})` : ''}`);
  }

  async function ensureExchange(payout: Payout): Promise<Payout> {
    if (payout.direct || payout.exchangeId) return payout;
    const pair = pairOf(payout);
    const fromAmount = fromBaseUnits(payout.amountUnits, HOST_ASSET.decimals);
    const estimate = await changeNow.estimateFixedRate(pair, fromAmount);
    // A timeout here may leave an exchange at ChangeNow that we never heard of: harmless, nobody funds it.
    const created = await changeNow.createExchange({ pair, fromAmount, address: payout.toAddress, refundAddress: wallet.address, rateId: estimate.rateId });
    const stored = await recordExchange(pool, payout.payoutId, { exchangeId: created.id, payinAddress: created.payinAddress, fromAmount: created.fromAmount, toAmount: created.toAmount });
    if (stored.exchangeId !== created.id) deps.log.info({ payoutId: payout.payoutId, orphan: created.id }, 'another worker stored its exchange first; this one is never funded');
    return stored;
  }

  /** Exchange (if needed) and the host wallet's transaction, each at most once per payout. */
  async function send(payoutId: string): Promise<SendOutcome> {
    let payout = await findPayout(pool, payoutId);
    if (!payout) throw new Error(`payout ${payoutId} does not exist`);
    if (payout.txHash || payout.status === 'settled') return { outcome: 'sent', payout };
    try {
      payout = await ensureExchange(payout);
    } catch (error) {
      return parkOrRethrow(payout, 'ChangeNow did not create the exchange', error);
    }
    const to = payout.direct ? payout.toAddress : payout.payinAddress!;
    // Never fund an exchange for another amount than the one we asked for.
    if (!payout.direct && payout.exchangeFromAmount !== fromBaseUnits(payout.amountUnits, HOST_ASSET.decimals)) {
      return park(payout, `exchange ${payout.exchangeId} expects ${payout.exchangeFromAmount} ETH, the payout is ${fromBaseUnits(payout.amountUnits, HOST_ASSET.decimals)} ETH: not funded`);
    }
    try {
      const txKey = payoutTxKey(payout.payoutId);
      const sent = await wallet.send(txKey, { to, valueWei: payout.amountUnits });
      return { outcome: 'sent', payout: await recordSent(pool, payout.payoutId, { txKey, txHash: sent.txHash }) };
    } catch (error) {
      return parkOrRethrow(payout, 'the host wallet could not send', error);
    }
  }

  /** Waits (by throwing NotYet) for the receipt and the exchange; books the payout once both are final. */
  async function settle(payoutId: string): Promise<SettleOutcome> {
    const payout = await findPayout(pool, payoutId);
    if (!payout) throw new Error(`payout ${payoutId} does not exist`);
    if (payout.status === 'settled') return { outcome: 'settled', payout };
    if (!payout.txKey) return park(payout, 'nothing was sent for this payout, so there is nothing to settle');
    const tx = await wallet.status(payout.txKey, deps.confirmations);
    switch (tx.state) {
      case 'unknown_key':
        return park(payout, `no stored transaction under ${payout.txKey}`);
      case 'pending':
        throw new NotYet(`transaction ${tx.txHash} has ${tx.confirmations} of ${deps.confirmations} confirmations`);
      case 'reverted':
        return park(payout, `transaction ${tx.txHash} reverted in block ${tx.blockNumber}; nothing is re-sent automatically`);
      case 'confirmed':
        break;
    }
    let ownerPayoutHash: string | null = payout.txHash;
    if (!payout.direct) {
      let exchange;
      try {
        exchange = await changeNow.getExchange(payout.exchangeId!);
      } catch (error) {
        return parkOrRethrow(payout, `ChangeNow did not report exchange ${payout.exchangeId}`, error);
      }
      if (exchange.status !== payout.exchangeStatus) await recordExchangeStatus(pool, payoutId, exchange.status);
      if (exchange.status === 'failed' || exchange.status === 'refunded') {
        const refund = exchange.refundHash ? ` (refund transaction ${exchange.refundHash})` : '';
        return park(payout, `ChangeNow exchange ${payout.exchangeId} ended ${exchange.status}${refund}; the owner was not paid by it`);
      }
      if (exchange.status !== 'finished') throw new NotYet(`exchange ${payout.exchangeId} is ${exchange.status}`);
      ownerPayoutHash = exchange.payoutHash;
    }
    const settled = await inTransaction(pool, async (tx) => {
      await recordPayout(tx, { payoutId: payout.payoutId, openChannelId: payout.openChannelId, ownerUnitsCleared: payout.clearedUnits, sentUnits: payout.amountUnits });
      return markSettled(tx, payout.payoutId, ownerPayoutHash);
    });
    deps.log.info({ payoutId, txHash: payout.txHash, ownerPayoutHash }, 'payout settled');
    return { outcome: 'settled', payout: settled };
  }

  return { send, settle };
}

export type PayoutExecutor = ReturnType<typeof createPayoutExecutor>;
