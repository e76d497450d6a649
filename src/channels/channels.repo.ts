import type { PayoutStrategy } from '../machines/payment.events.js';
import type { Queryable } from '../persistence/transaction.js';

// Channel rows. bigint ids come back from pg as strings (its default for int8), NUMERIC as strings:
// neither ever passes through a JS number.

export type { Queryable };

export interface ChannelRow {
  openChannelId: string;
  closedChannelId: string;
  title: string;
  walletAddress: string;
  currency: string;
  network: string;
  strategy: PayoutStrategy;
  thresholdUsd: string | null;
  platformFeePercent: string;
  createdAt: Date;
  updatedAt: Date;
}

export type ChannelSettings = Omit<ChannelRow, 'createdAt' | 'updatedAt'>;

const COLUMNS = `open_channel_id::text AS "openChannelId", closed_channel_id::text AS "closedChannelId", title,
  owner_wallet_address AS "walletAddress", payout_currency AS currency, payout_network AS network,
  payout_strategy AS strategy, threshold_usd::text AS "thresholdUsd", platform_fee_percent::text AS "platformFeePercent",
  created_at AS "createdAt", updated_at AS "updatedAt"`;

export async function insertChannel(db: Queryable, c: ChannelSettings): Promise<ChannelRow> {
  const { rows } = await db.query<ChannelRow>(
    `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network,
                           payout_strategy, threshold_usd, platform_fee_percent)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     RETURNING ${COLUMNS}`,
    [c.openChannelId, c.closedChannelId, c.title, c.walletAddress, c.currency, c.network, c.strategy, c.thresholdUsd, c.platformFeePercent],
  );
  return rows[0]!;
}

export async function findChannel(db: Queryable, openChannelId: string, options: { lock?: boolean } = {}): Promise<ChannelRow | null> {
  const { rows } = await db.query<ChannelRow>(
    `SELECT ${COLUMNS} FROM channels WHERE open_channel_id = $1${options.lock ? ' FOR UPDATE' : ''}`,
    [openChannelId],
  );
  return rows[0] ?? null;
}

export async function listChannels(db: Queryable): Promise<ChannelRow[]> {
  const { rows } = await db.query<ChannelRow>(`SELECT ${COLUMNS} FROM channels ORDER BY created_at, open_channel_id`);
  return rows;
}

export async function updateChannel(db: Queryable, c: ChannelSettings): Promise<ChannelRow> {
  const { rows } = await db.query<ChannelRow>(
    `UPDATE channels
        SET closed_channel_id = $2, title = $3, owner_wallet_address = $4, payout_currency = $5, payout_network = $6,
            payout_strategy = $7, threshold_usd = $8, platform_fee_percent = $9, updated_at = now()
      WHERE open_channel_id = $1
      RETURNING ${COLUMNS}`,
    [c.openChannelId, c.closedChannelId, c.title, c.walletAddress, c.currency, c.network, c.strategy, c.thresholdUsd, c.platformFeePercent],
  );
  if (!rows[0]) throw new Error(`channel ${c.openChannelId} vanished during its update`);
  return rows[0];
}
