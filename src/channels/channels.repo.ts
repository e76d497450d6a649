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

/**
 * The columns read as a ChannelRow. In a join, `from` qualifies them ("c.") and `as` prefixes their
 * names ("channel.") so they do not collide with the other table's; splitJoined takes them apart.
 */
export function channelColumns(from = '', as = ''): string {
  return `${from}open_channel_id::text AS "${as}openChannelId", ${from}closed_channel_id::text AS "${as}closedChannelId", ${from}title AS "${as}title",
  ${from}owner_wallet_address AS "${as}walletAddress", ${from}payout_currency AS "${as}currency", ${from}payout_network AS "${as}network",
  ${from}payout_strategy AS "${as}strategy", ${from}threshold_usd::text AS "${as}thresholdUsd", ${from}platform_fee_percent::text AS "${as}platformFeePercent",
  ${from}created_at AS "${as}createdAt", ${from}updated_at AS "${as}updatedAt"`;
}

const COLUMNS = channelColumns();

/**
 * A row of a LEFT JOIN taken apart: the columns named `${prefix}…` make the joined record (null when
 * its `key` column is null: no match), the others the main one.
 */
export function splitJoined<A, B>(row: Record<string, unknown>, prefix: string, key: keyof B & string): [A, B | null] {
  const main: Record<string, unknown> = {};
  const joined: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(row)) {
    if (name.startsWith(prefix)) joined[name.slice(prefix.length)] = value;
    else main[name] = value;
  }
  return [main as A, joined[key] === null || joined[key] === undefined ? null : (joined as B)];
}

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

const FIND = { name: 'channel-find', text: `SELECT ${COLUMNS} FROM channels WHERE open_channel_id = $1` };
// The locking read is another text, so it cannot share the name; it serves rare admin edits and stays unnamed.
const FIND_FOR_UPDATE = `${FIND.text} FOR UPDATE`;

export async function findChannel(db: Queryable, openChannelId: string, options: { lock?: boolean } = {}): Promise<ChannelRow | null> {
  const { rows } = options.lock
    ? await db.query<ChannelRow>(FIND_FOR_UPDATE, [openChannelId])
    : await db.query<ChannelRow>({ ...FIND, values: [openChannelId] });
  return rows[0] ?? null;
}

const readKey = (openChannelId: string) => `channel:${openChannelId}`;

/** Keeps a channel row read in a transition for the inline effects after it (TransitionScope.reads). */
export function rememberChannel(reads: Map<string, unknown>, channel: ChannelRow): void {
  reads.set(readKey(channel.openChannelId), channel);
}

/** The channel row an earlier inline effect of the transition read, or a read of it. */
export async function channelOf(db: Queryable, openChannelId: string, reads?: Map<string, unknown>): Promise<ChannelRow | null> {
  return (reads?.get(readKey(openChannelId)) as ChannelRow | undefined) ?? findChannel(db, openChannelId);
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
