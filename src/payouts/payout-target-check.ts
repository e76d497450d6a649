import { Decimal } from 'decimal.js';
import { isRetryable, ProviderUnavailableError, type FieldProblem } from '../domain/errors.js';
import { HOST_ASSET, isDirect, isUsdStablecoin } from '../domain/payout-plan.js';
import type { ChangeNowClient } from '../providers/changenow/changenow.client.js';

// Checked when an owner's payout settings are saved (admin API), so a configuration ChangeNow cannot
// serve is refused with the field named, instead of surfacing later as a payout parked for review:
// a pair ChangeNow does not exchange, a threshold below ChangeNow's minimum swap, or (instant payouts)
// a plan whose owner share is below it. Owners paid in ETH need no exchange and pass.

export interface PayoutTarget {
  currency: string;
  network: string;
  strategy: 'instant' | 'threshold';
  thresholdUsd: string | null;
  feePercent: string;
  /** Active plans' prices in USD, with the field each came from ("plans.0.price_usd"). */
  plans: { field: string; priceUsd: string }[];
}

export type PayoutTargetCheck = (target: PayoutTarget) => Promise<FieldProblem[]>;

export function createPayoutTargetCheck(changeNow: ChangeNowClient): PayoutTargetCheck {
  return async (target) => {
    if (isDirect(target.currency, target.network)) return [];
    const pair = { fromCurrency: HOST_ASSET.currency, fromNetwork: HOST_ASSET.network, toCurrency: target.currency.toLowerCase(), toNetwork: target.network.toLowerCase() };
    let minEth: string;
    let minUsd: string | null = null;
    try {
      minEth = await changeNow.minAmount(pair);
      // The minimum in dollars, where the owner's coin is one.
      if (isUsdStablecoin(target.currency)) minUsd = (await changeNow.estimateFixedRate(pair, minEth)).toAmount;
    } catch (error) {
      if (isRetryable(error)) throw new ProviderUnavailableError('changenow', 'ChangeNow did not answer, so the payout settings cannot be checked; nothing was saved, please try again');
      return [{ field: 'currency', message: `ChangeNow does not exchange ${pair.fromCurrency} to ${pair.toCurrency} on ${pair.toNetwork} (${(error as Error).message}): choose another currency or network` }];
    }
    if (minUsd === null) return [];
    const problems: FieldProblem[] = [];
    if (target.strategy === 'threshold' && target.thresholdUsd !== null && new Decimal(target.thresholdUsd).lt(minUsd)) {
      problems.push({ field: 'threshold_usd', message: `must be at least ${minUsd} USD: ChangeNow's smallest swap from ${minEth} ETH to ${pair.toCurrency}` });
    }
    if (target.strategy === 'instant') {
      const ownerPart = new Decimal(100).minus(target.feePercent).div(100);
      for (const plan of target.plans) {
        const share = new Decimal(plan.priceUsd).times(ownerPart);
        if (share.lt(minUsd)) {
          problems.push({ field: plan.field, message: `the owner's share (${share.toFixed(2)} USD) is below ChangeNow's smallest swap (${minUsd} USD): raise the price or use threshold payouts` });
        }
      }
    }
    return problems;
  };
}
