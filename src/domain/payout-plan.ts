import type { DecimalString } from './money.js';
import { splitOutcome, type Split } from './payout-split.js';
import { toBaseUnits } from './units.js';

// Pure rules of paying an owner: what the host wallet holds, when a payout needs no exchange, how a
// payment's share is computed from what NowPayments says arrived, and how much ETH a USD-locked batch
// sends. No I/O; the actors feed these with facts and act on the answers.

/** The host wallet receives NowPayments' outcome in ETH on Ethereum and pays from it. */
export const HOST_ASSET = { currency: 'eth', network: 'eth', decimals: 18 } as const;

/** Owner currencies whose value is the dollar: a threshold batch paid in one of them is worth the USD locked at payment time. */
const USD_STABLECOINS = new Set(['usdt', 'usdc', 'dai']);

/** An owner paid in the host's own asset gets the host's transfer directly: no exchange, no ChangeNow fee. */
export function isDirect(currency: string, network: string): boolean {
  return currency.toLowerCase() === HOST_ASSET.currency && network.toLowerCase() === HOST_ASSET.network;
}

export function isUsdStablecoin(currency: string): boolean {
  return USD_STABLECOINS.has(currency.toLowerCase());
}

export interface OutcomeFacts {
  outcomeAmount: DecimalString | null;
  outcomeCurrency: string | null;
  priceAmount: DecimalString | null;
  priceCurrency: string | null;
  payAmount: DecimalString | null;
  actuallyPaid: DecimalString | null;
}

/** The payment's split between owner and platform, or why it cannot be computed (a person must look). */
export function shareOf(np: OutcomeFacts, feePercent: DecimalString): { split: Split } | { problem: string } {
  if (!np.outcomeAmount) return { problem: 'NowPayments did not report outcome_amount, so the owner share cannot be computed from what arrived' };
  const currency = np.outcomeCurrency?.toLowerCase() ?? null;
  if (currency !== HOST_ASSET.currency) {
    return { problem: `the outcome arrived in ${currency ?? 'an unreported currency'}; the host wallet pays from ${HOST_ASSET.currency}: check the NowPayments outcome setting` };
  }
  if (!np.priceAmount || np.priceCurrency?.toLowerCase() !== 'usd') {
    return { problem: `the price was reported as ${np.priceAmount ?? '?'} ${np.priceCurrency ?? '?'}; a USD price is needed to value the share` };
  }
  try {
    return {
      split: splitOutcome({
        outcomeAmount: np.outcomeAmount,
        outcomeDecimals: HOST_ASSET.decimals,
        feePercent,
        priceAmount: np.priceAmount,
        payAmount: np.payAmount,
        actuallyPaid: np.actuallyPaid,
      }),
    };
  } catch (error) {
    return { problem: `the reported amounts cannot be split: ${(error as Error).message}` };
  }
}

/** digits / 10^scale of a non-negative decimal string. */
function fraction(value: DecimalString): { digits: bigint; scale: bigint } {
  const scale = value.includes('.') ? value.split('.')[1]!.length : 0;
  return { digits: toBaseUnits(value, scale), scale: 10n ** BigInt(scale) };
}

/**
 * The volatility lock of a threshold batch paid in a USD stablecoin: the owner is owed `owedUsd` (the
 * credits' USD value at payment time), and a fixed-rate quote says `quotedToAmount` of the stablecoin
 * for `quotedUnits` wei now. Sends ceil(quotedUnits × owedUsd / quotedToAmount) wei, so the owner gets
 * the locked value whichever way ETH moved; the difference to the credits is the platform's exchange
 * difference in the ledger.
 */
export function lockedUnits(quotedUnits: bigint, owedUsd: DecimalString, quotedToAmount: DecimalString): bigint {
  const owed = fraction(owedUsd);
  const quote = fraction(quotedToAmount);
  if (quote.digits === 0n) throw new Error('the quote is zero');
  const numerator = quotedUnits * owed.digits * quote.scale;
  const denominator = quote.digits * owed.scale;
  return (numerator + denominator - 1n) / denominator;
}
