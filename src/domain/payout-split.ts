import type { DecimalString } from './money.js';
import { fromBaseUnits, toBaseUnits } from './units.js';

// How one payment's money is divided between the channel owner and the platform. Pure: no I/O, no
// clock, no floats — integers (bigint) all the way, so the same facts always give the same split.
//
// Rounding rule (the whole of it):
// - The fee percent (numeric(5,2)) becomes exact basis points: "2.5" → 250 bp. More than 2 decimals,
//   or a fee outside 0 <= fee < 100 (the channels table's own CHECK), is refused.
// - Base units (wei): ownerUnits = floor(outcomeUnits × (10000 − bp) / 10000). The owner's share is
//   rounded DOWN to the base unit and the remainder goes to the platform: feeUnits = outcomeUnits −
//   ownerUnits, so owner + fee == outcome exactly and no wei is created or lost. We never owe the
//   owner a fraction of a wei we do not hold.
// - USD: usdValue = priceAmount × min(1, actuallyPaid / payAmount), rounded DOWN to 8 decimals — what
//   actually arrived (an accepted 5-of-9.99 underpayment is worth ~5, not 9.99). Without payAmount or
//   actuallyPaid (or with payAmount 0) it is priceAmount. An overpayment is not worth more than the
//   price: the USD value is NowPayments' price, the surplus stays visible in the base units.
//   ownerUsd = floor8(usdValue × (10000 − bp) / 10000), feeUsd = usdValue − ownerUsd (same rule, so
//   ownerUsd + feeUsd == usdValue exactly).

const USD_DECIMALS = 8;
const BP = 10_000n;

export interface SplitInput {
  outcomeAmount: DecimalString;
  outcomeDecimals: number;
  /** Platform fee in percent, up to 2 decimals ("10", "2.5", "99.99"). */
  feePercent: DecimalString;
  /** The invoice price in USD. */
  priceAmount: DecimalString;
  payAmount?: DecimalString | null;
  actuallyPaid?: DecimalString | null;
}

export interface Split {
  outcomeUnits: bigint;
  ownerUnits: bigint;
  feeUnits: bigint;
  feeBasisPoints: bigint;
  usdValue: DecimalString;
  ownerUsd: DecimalString;
  feeUsd: DecimalString;
}

/** A non-negative decimal as an exact fraction: digits / 10^scale. */
function exact(value: DecimalString, what: string): { digits: bigint; scale: number } {
  const match = /^\d+(?:\.(\d+))?$/.exec(value);
  if (!match) throw new Error(`${what} is not a non-negative decimal: "${value}"`);
  const scale = match[1]?.length ?? 0;
  return { digits: toBaseUnits(value, scale), scale };
}

const pow10 = (n: number): bigint => 10n ** BigInt(n);

export function feeBasisPoints(feePercent: DecimalString): bigint {
  let bp: bigint;
  try {
    bp = toBaseUnits(feePercent, 2);
  } catch (error) {
    throw new Error(`fee percent must be a decimal with at most 2 decimals: ${(error as Error).message}`, { cause: error });
  }
  if (bp >= BP) throw new Error(`fee percent must be below 100, got ${feePercent}`);
  return bp;
}

/** priceAmount × min(1, actuallyPaid / payAmount), in 1e-8 USD units, rounded down. */
function usdUnitsReceived(priceAmount: DecimalString, payAmount?: DecimalString | null, actuallyPaid?: DecimalString | null): bigint {
  const price = exact(priceAmount, 'priceAmount');
  const fullPrice = (price.digits * pow10(USD_DECIMALS)) / pow10(price.scale);
  if (payAmount == null || actuallyPaid == null) return fullPrice;
  const pay = exact(payAmount, 'payAmount');
  const paid = exact(actuallyPaid, 'actuallyPaid');
  if (pay.digits === 0n) return fullPrice;
  // paid / pay = (paid.digits × 10^pay.scale) / (pay.digits × 10^paid.scale)
  const numerator = paid.digits * pow10(pay.scale);
  const denominator = pay.digits * pow10(paid.scale);
  if (numerator >= denominator) return fullPrice;
  return (price.digits * numerator * pow10(USD_DECIMALS)) / (pow10(price.scale) * denominator);
}

export type UsdSplitInput = Pick<SplitInput, 'feePercent' | 'priceAmount' | 'payAmount' | 'actuallyPaid'>;
export type UsdSplit = Pick<Split, 'usdValue' | 'ownerUsd' | 'feeUsd'>;

/** The USD half of the rounding rule above, at a fee already turned into basis points. */
function usdSplitAt(bp: bigint, input: UsdSplitInput): UsdSplit {
  const usdUnits = usdUnitsReceived(input.priceAmount, input.payAmount, input.actuallyPaid);
  // bigint division truncates toward zero; every operand is non-negative, so this is floor.
  const ownerUsdUnits = (usdUnits * (BP - bp)) / BP;
  return {
    usdValue: fromBaseUnits(usdUnits, USD_DECIMALS),
    ownerUsd: fromBaseUnits(ownerUsdUnits, USD_DECIMALS),
    feeUsd: fromBaseUnits(usdUnits - ownerUsdUnits, USD_DECIMALS),
  };
}

/**
 * What the payment is worth in USD (what actually arrived, at most the price) and how that divides
 * between owner and platform; the same numbers as splitOutcome's usdValue/ownerUsd/feeUsd, for when
 * no outcome amount is known yet (routing).
 */
export function splitUsd(input: UsdSplitInput): UsdSplit {
  return usdSplitAt(feeBasisPoints(input.feePercent), input);
}

export function splitOutcome(input: SplitInput): Split {
  const bp = feeBasisPoints(input.feePercent);
  const outcomeUnits = toBaseUnits(input.outcomeAmount, input.outcomeDecimals);
  // bigint division truncates toward zero; every operand is non-negative, so this is floor.
  const ownerUnits = (outcomeUnits * (BP - bp)) / BP;
  return {
    outcomeUnits,
    ownerUnits,
    feeUnits: outcomeUnits - ownerUnits,
    feeBasisPoints: bp,
    ...usdSplitAt(bp, input),
  };
}
