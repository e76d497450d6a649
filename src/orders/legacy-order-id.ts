// The bot this service replaces created invoices with order_id "PGP-{user_id}|{open_channel_id}".
// Payment links it handed out stay payable (bookmarks, re-opened invoices), so IPNs carrying that form
// keep arriving with no order of ours behind them.

export const LEGACY_PREFIX = 'PGP-';

export interface LegacyOrderRef {
  buyerTelegramId: string;
  openChannelId: string;
}

const BIGINT_MAX = 2n ** 63n - 1n;
const fits = (digits: string) => BigInt(digits.replace('-', '')) <= BIGINT_MAX;

export const isLegacyOrderId = (orderId: string): boolean => orderId.startsWith(LEGACY_PREFIX);

/** The buyer and channel a legacy order id names, or null when it does not have the legacy shape. */
export function parseLegacyOrderId(orderId: string): LegacyOrderRef | null {
  const match = /^PGP-([1-9]\d{0,18})\|(-?[1-9]\d{0,18})$/.exec(orderId.trim());
  if (!match || !fits(match[1]!) || !fits(match[2]!)) return null;
  return { buyerTelegramId: match[1]!, openChannelId: match[2]! };
}

/**
 * Our order id for a legacy payment. The old bot reused one order id for every purchase of a buyer in a
 * channel, so that id cannot tell a renewal from a repeat deposit; the payment can. A repeat deposit
 * (a child payment) is keyed by its parent, so parent and child share one order and only one is granted.
 */
export function legacyOrderKey(legacyOrderId: string, rootPaymentId: string): string {
  return `${legacyOrderId.trim()}#${rootPaymentId}`;
}
