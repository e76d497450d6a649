import { z } from 'zod';
import { add } from '../domain/money.js';
import { InvalidInputError, NotFoundError } from '../domain/errors.js';
import { fromBaseUnits } from '../domain/units.js';
import type { Queryable } from '../persistence/transaction.js';
import { findChannel } from './channels.repo.js';

// What a channel owner reads: the subscribers with their end dates, and money per period. Read-only.
//
// Revenue is the ledger's (migrations/007), not the orders' list price: for each payment, its owner
// credit plus its platform fee, at the USD value locked at payment time from what actually arrived (an
// accepted 5-of-9.99 underpayment counts 5). So revenue = owner share + platform fee, and it lines up
// with what was paid out and what is still owed. A payment counts in the period its share was booked
// (the split/accumulate step, normally seconds after it was paid; a payment whose payout waits for
// review is counted once booked). Amounts on chain are ETH base units (wei) as decimal strings, also in
// ETH; USD as decimal strings. Periods are UTC: day, ISO week (from Monday), month.

export const SUBSCRIBER_STATUSES = ['active', 'expired', 'removed'] as const;
export type SubscriberStatus = (typeof SUBSCRIBER_STATUSES)[number];

export const subscribersQuerySchema = z.object({
  status: z.enum(SUBSCRIBER_STATUSES, { error: 'must be "active", "expired" or "removed"' }).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
  offset: z.coerce.number().int().min(0).max(10_000_000).default(0),
});
export type SubscribersQuery = z.output<typeof subscribersQuerySchema>;

export interface SubscriberView {
  subscription_id: string;
  buyer_telegram_id: string;
  /** active: expires in the future; expired: ended, not removed (yet); removed: taken out of the channel (expiry or revoke). */
  status: SubscriberStatus;
  expires_at: string;
  removed_at: string | null;
  since: string;
  paid_orders: number;
  last_paid_at: string | null;
  adjustments: number;
  last_adjustment: { action: string; by: string; reason: string; at: string } | null;
}

export interface SubscribersView {
  open_channel_id: string;
  title: string;
  as_of: string;
  counts: Record<SubscriberStatus | 'total', number>;
  limit: number;
  offset: number;
  subscribers: SubscriberView[];
}

const STATUS = `CASE WHEN s.removed_at IS NOT NULL THEN 'removed' WHEN s.expires_at <= now() THEN 'expired' ELSE 'active' END`;

async function channelOrThrow(db: Queryable, openChannelId: string) {
  const channel = await findChannel(db, openChannelId);
  if (!channel) throw new NotFoundError(`open_channel_id: no channel ${openChannelId}`);
  return channel;
}

/** The channel's subscribers: active ones first (soonest to end first), then expired, then removed (latest first). */
export async function channelSubscribers(db: Queryable, openChannelId: string, query: SubscribersQuery): Promise<SubscribersView> {
  const channel = await channelOrThrow(db, openChannelId);
  const { rows: counts } = await db.query<{ active: number; expired: number; removed: number; total: number; asOf: Date }>(
    `SELECT count(*) FILTER (WHERE ${STATUS} = 'active')::int AS active, count(*) FILTER (WHERE ${STATUS} = 'expired')::int AS expired,
            count(*) FILTER (WHERE ${STATUS} = 'removed')::int AS removed, count(*)::int AS total, now() AS "asOf"
       FROM subscriptions s WHERE s.open_channel_id = $1`,
    [openChannelId],
  );
  const { rows } = await db.query<{
    subscriptionId: string;
    buyer: string;
    status: SubscriberStatus;
    expiresAt: Date;
    removedAt: Date | null;
    since: Date;
    paidOrders: number;
    lastPaidAt: Date | null;
    adjustments: number;
    lastAction: string | null;
    lastBy: string | null;
    lastReason: string | null;
    lastAt: Date | null;
  }>(
    `SELECT s.subscription_id::text AS "subscriptionId", s.buyer_telegram_id::text AS buyer, ${STATUS} AS status,
            s.expires_at AS "expiresAt", s.removed_at AS "removedAt", s.created_at AS since,
            g.paid_orders AS "paidOrders", g.last_paid_at AS "lastPaidAt", a.adjustments,
            la.action AS "lastAction", la.adjusted_by AS "lastBy", la.reason AS "lastReason", la.created_at AS "lastAt"
       FROM subscriptions s
       CROSS JOIN LATERAL (SELECT count(*)::int AS paid_orders, max(granted_at) AS last_paid_at FROM subscription_grants WHERE subscription_id = s.subscription_id) g
       CROSS JOIN LATERAL (SELECT count(*)::int AS adjustments FROM subscription_adjustments WHERE subscription_id = s.subscription_id) a
       LEFT JOIN LATERAL (SELECT action, adjusted_by, reason, created_at FROM subscription_adjustments
                           WHERE subscription_id = s.subscription_id ORDER BY adjustment_id DESC LIMIT 1) la ON true
      WHERE s.open_channel_id = $1 AND ($2::text IS NULL OR ${STATUS} = $2)
      ORDER BY array_position(ARRAY['active', 'expired', 'removed'], ${STATUS}),
               CASE WHEN ${STATUS} = 'active' THEN s.expires_at END ASC, s.expires_at DESC, s.subscription_id
      LIMIT $3 OFFSET $4`,
    [openChannelId, query.status ?? null, query.limit, query.offset],
  );
  const c = counts[0]!;
  return {
    open_channel_id: channel.openChannelId,
    title: channel.title,
    as_of: c.asOf.toISOString(),
    counts: { active: c.active, expired: c.expired, removed: c.removed, total: c.total },
    limit: query.limit,
    offset: query.offset,
    subscribers: rows.map((r) => ({
      subscription_id: r.subscriptionId,
      buyer_telegram_id: r.buyer,
      status: r.status,
      expires_at: r.expiresAt.toISOString(),
      removed_at: r.removedAt?.toISOString() ?? null,
      since: r.since.toISOString(),
      paid_orders: r.paidOrders,
      last_paid_at: r.lastPaidAt?.toISOString() ?? null,
      adjustments: r.adjustments,
      last_adjustment: r.lastAction ? { action: r.lastAction, by: r.lastBy!, reason: r.lastReason!, at: r.lastAt!.toISOString() } : null,
    })),
  };
}

// --- money per period ------------------------------------------------------------------------------

export const REPORT_PERIODS = ['day', 'week', 'month'] as const;
export type ReportPeriod = (typeof REPORT_PERIODS)[number];

/** At most this many periods in one report (a day report of almost three years). */
export const MAX_PERIODS = 1000;
const MIN_PERIOD_MS: Record<ReportPeriod, number> = { day: 86_400_000, week: 7 * 86_400_000, month: 28 * 86_400_000 };
const DEFAULT_PERIODS = 12;

/** "2026-01-31" (midnight UTC) or an ISO 8601 moment with its zone ("2026-01-31T12:00:00Z", "…+03:00"). */
const momentSchema = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}))?$/, 'must be a date (2026-01-31, UTC) or an ISO 8601 time with its zone (2026-01-31T12:00:00Z)')
  .transform((value, ctx) => {
    const date = new Date(value.length === 10 ? `${value}T00:00:00Z` : value);
    if (Number.isNaN(date.getTime()) || (value.length === 10 && date.toISOString().slice(0, 10) !== value)) {
      ctx.addIssue({ code: 'custom', message: 'is not a real date' });
      return z.NEVER;
    }
    return date;
  });

export const reportQuerySchema = z.object({
  period: z.enum(REPORT_PERIODS, { error: 'must be "day", "week" or "month"' }).default('month'),
  from: momentSchema.optional().meta({ description: 'Start (inclusive); default: the start of the period 11 periods before `to`' }),
  to: momentSchema.optional().meta({ description: 'End (exclusive); default: now' }),
});
export type ReportQuery = z.output<typeof reportQuerySchema>;

export interface MoneyFigures {
  payments: number;
  /** Owner share + platform fee, USD locked at payment time. */
  revenue_usd: string;
  owner_share_usd: string;
  owner_share_units: string;
  owner_share_eth: string;
  platform_fee_usd: string;
  platform_fee_units: string;
  platform_fee_eth: string;
  payouts: number;
  /** Owner credits cleared by payouts recorded in the period (what left for the owner), in ETH units… */
  paid_out_units: string;
  paid_out_eth: string;
  /** …and the USD value locked on those credits. */
  paid_out_usd: string;
}

export interface ReportPeriodRow extends MoneyFigures {
  start: string;
  end: string;
  /** What the channel owed its owner at the period's end: credited and not yet paid out (open + pending). */
  balance_units: string;
  balance_eth: string;
}

export interface ChannelReport {
  open_channel_id: string;
  title: string;
  period: ReportPeriod;
  from: string;
  to: string;
  currency: 'eth';
  revenue_basis: string;
  periods: ReportPeriodRow[];
  totals: MoneyFigures;
  /** Now: what is owed (open: not yet in any payout; pending: in a payout not yet settled). */
  balance: { as_of: string; owed_units: string; owed_eth: string; open_units: string; open_eth: string; open_usd: string; pending_units: string; pending_eth: string };
}

const eth = (units: bigint | string) => fromBaseUnits(BigInt(units), 18);

export const REVENUE_BASIS =
  'ledger: owner credit + platform fee per payment, USD locked at payment time from what arrived; counted when the share was booked';

type BucketRow = {
  start: Date;
  end: Date;
  payments: number;
  revenueUsd: string;
  ownerUsd: string;
  ownerUnits: string;
  feeUsd: string;
  feeUnits: string;
  payouts: number;
  paidOutUnits: string;
  paidOutUsd: string;
  balanceUnits: string;
};

/** Revenue, owner share, payouts and balance of a channel per day, week or month (UTC). */
export async function channelReport(db: Queryable, openChannelId: string, query: ReportQuery): Promise<ChannelReport> {
  const channel = await channelOrThrow(db, openChannelId);
  const to = query.to ?? new Date();
  if (query.from && query.from.getTime() >= to.getTime()) throw InvalidInputError.field('from', `must be before to (${to.toISOString()})`);
  if (query.from && (to.getTime() - query.from.getTime()) / MIN_PERIOD_MS[query.period] > MAX_PERIODS) {
    throw InvalidInputError.field('from', `the range holds more than ${MAX_PERIODS} ${query.period}s: narrow it or choose a longer period`);
  }
  // Calendar arithmetic on UTC wall-clock timestamps, whatever the session's time zone.
  const { rows } = await db.query<BucketRow>(
    `WITH range AS (
       SELECT coalesce($3::timestamptz, (date_trunc($2, $4::timestamptz AT TIME ZONE 'UTC') - ${DEFAULT_PERIODS - 1} * ('1 ' || $2)::interval) AT TIME ZONE 'UTC') AS lo,
              $4::timestamptz AS hi
     ), buckets AS (
       SELECT greatest(g AT TIME ZONE 'UTC', r.lo) AS start, least((g + ('1 ' || $2)::interval) AT TIME ZONE 'UTC', r.hi) AS "end"
         FROM range r, generate_series(date_trunc($2, r.lo AT TIME ZONE 'UTC'), (r.hi AT TIME ZONE 'UTC') - interval '1 microsecond', ('1 ' || $2)::interval) g
     ), entries AS (
       SELECT e.kind, e.amount_units, e.usd_value, e.created_at,
              CASE WHEN e.kind = 'payout' THEN (SELECT sum(c.usd_value) FROM ledger_entries c WHERE c.kind = 'payment_credit' AND c.payout_id = e.payout_id) END AS cleared_usd
         FROM ledger_entries e, range r
        WHERE e.open_channel_id = $1 AND e.created_at >= r.lo AND e.created_at < r.hi AND e.kind IN ('payment_credit', 'platform_fee', 'payout')
     ), sums AS (
       SELECT b.start, b."end",
              count(e.*) FILTER (WHERE e.kind = 'payment_credit')::int AS payments,
              coalesce(sum(e.usd_value) FILTER (WHERE e.kind IN ('payment_credit', 'platform_fee')), 0) AS revenue_usd,
              coalesce(sum(e.usd_value) FILTER (WHERE e.kind = 'payment_credit'), 0) AS owner_usd,
              coalesce(sum(e.amount_units) FILTER (WHERE e.kind = 'payment_credit'), 0) AS owner_units,
              coalesce(sum(e.usd_value) FILTER (WHERE e.kind = 'platform_fee'), 0) AS fee_usd,
              coalesce(sum(e.amount_units) FILTER (WHERE e.kind = 'platform_fee'), 0) AS fee_units,
              count(e.*) FILTER (WHERE e.kind = 'payout')::int AS payouts,
              coalesce(-sum(e.amount_units) FILTER (WHERE e.kind = 'payout'), 0) AS paid_out_units,
              coalesce(sum(e.cleared_usd) FILTER (WHERE e.kind = 'payout'), 0) AS paid_out_usd
         FROM buckets b LEFT JOIN entries e ON e.created_at >= b.start AND e.created_at < b."end"
        GROUP BY b.start, b."end"
     ), opening AS (
       SELECT coalesce(sum(amount_units), 0) AS units FROM ledger_entries, range r
        WHERE open_channel_id = $1 AND account = 'owner' AND created_at < r.lo
     )
     SELECT s.start, s."end", s.payments, trim_scale(s.revenue_usd)::text AS "revenueUsd", trim_scale(s.owner_usd)::text AS "ownerUsd",
            s.owner_units::text AS "ownerUnits", trim_scale(s.fee_usd)::text AS "feeUsd", s.fee_units::text AS "feeUnits", s.payouts,
            s.paid_out_units::text AS "paidOutUnits", trim_scale(s.paid_out_usd)::text AS "paidOutUsd",
            (o.units + sum(s.owner_units - s.paid_out_units) OVER (ORDER BY s.start))::text AS "balanceUnits"
       FROM sums s, opening o
      ORDER BY s.start`,
    [openChannelId, query.period, query.from ?? null, to],
  );
  if (rows.length > MAX_PERIODS) throw InvalidInputError.field('from', `the range holds ${rows.length} ${query.period}s, more than ${MAX_PERIODS}: narrow it or choose a longer period`);

  const { rows: now } = await db.query<{ owed: string; open: string; openUsd: string; asOf: Date }>(
    `SELECT coalesce(sum(amount_units) FILTER (WHERE account = 'owner'), 0)::text AS owed,
            coalesce(sum(amount_units) FILTER (WHERE kind = 'payment_credit' AND payout_id IS NULL), 0)::text AS open,
            trim_scale(coalesce(sum(usd_value) FILTER (WHERE kind = 'payment_credit' AND payout_id IS NULL), 0))::text AS "openUsd",
            now() AS "asOf"
       FROM ledger_entries WHERE open_channel_id = $1`,
    [openChannelId],
  );
  const current = now[0]!;
  const pending = BigInt(current.owed) - BigInt(current.open);

  const periods: ReportPeriodRow[] = rows.map((r) => ({
    start: r.start.toISOString(),
    end: r.end.toISOString(),
    ...figures(r),
    balance_units: r.balanceUnits,
    balance_eth: eth(r.balanceUnits),
  }));
  return {
    open_channel_id: channel.openChannelId,
    title: channel.title,
    period: query.period,
    from: (rows[0]?.start ?? query.from ?? to).toISOString(),
    to: to.toISOString(),
    currency: 'eth',
    revenue_basis: REVENUE_BASIS,
    periods,
    totals: totalOf(rows),
    balance: {
      as_of: current.asOf.toISOString(),
      owed_units: current.owed,
      owed_eth: eth(current.owed),
      open_units: current.open,
      open_eth: eth(current.open),
      open_usd: current.openUsd,
      pending_units: pending.toString(),
      pending_eth: eth(pending),
    },
  };
}

function figures(r: Omit<BucketRow, 'start' | 'end' | 'balanceUnits'>): MoneyFigures {
  return {
    payments: r.payments,
    revenue_usd: r.revenueUsd,
    owner_share_usd: r.ownerUsd,
    owner_share_units: r.ownerUnits,
    owner_share_eth: eth(r.ownerUnits),
    platform_fee_usd: r.feeUsd,
    platform_fee_units: r.feeUnits,
    platform_fee_eth: eth(r.feeUnits),
    payouts: r.payouts,
    paid_out_units: r.paidOutUnits,
    paid_out_eth: eth(r.paidOutUnits),
    paid_out_usd: r.paidOutUsd,
  };
}

/** Sums of the periods: counts and wei as integers, USD as decimals (never a float). */
function totalOf(rows: BucketRow[]): MoneyFigures {
  const units = (k: 'ownerUnits' | 'feeUnits' | 'paidOutUnits') => rows.reduce((sum, r) => sum + BigInt(r[k]), 0n).toString();
  const usd = (k: 'revenueUsd' | 'ownerUsd' | 'feeUsd' | 'paidOutUsd') => rows.reduce((sum, r) => add(sum, r[k]), '0');
  return figures({
    payments: rows.reduce((n, r) => n + r.payments, 0),
    payouts: rows.reduce((n, r) => n + r.payouts, 0),
    revenueUsd: usd('revenueUsd'),
    ownerUsd: usd('ownerUsd'),
    ownerUnits: units('ownerUnits'),
    feeUsd: usd('feeUsd'),
    feeUnits: units('feeUnits'),
    paidOutUnits: units('paidOutUnits'),
    paidOutUsd: usd('paidOutUsd'),
  });
}
