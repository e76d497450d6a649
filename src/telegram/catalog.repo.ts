import type { ChannelRow } from '../channels/channels.repo.js';
import type { PlanRow } from '../channels/plans.repo.js';
import type { Route } from '../machines/payment.events.js';

// What the invite actor reads about a payment's channel and plan (tables from migrations/002, owned by
// the channel admin; read-only here). The bot uses the admin's repositories.

/** texts: the channel's custom bot texts (validated again where they are used). */
export type CatalogChannel = Pick<ChannelRow, 'openChannelId' | 'closedChannelId' | 'title'> & { texts?: unknown };
export type CatalogPlan = Omit<PlanRow, 'createdAt'>;

export interface AccessTarget {
  route: Route | null;
  channel: CatalogChannel | null;
  plan: CatalogPlan | null;
}

/**
 * SQL: what the invite effect needs about the payment $1, in one row (none when there is no such
 * payment): its route, its channel and its plan (each NULL when absent). The invite actor reads it as
 * the first CTE of the statement that also locks the subscription to grant (src/telegram/invite-claim.repo.ts).
 */
export const ACCESS_TARGET_SQL = `SELECT p.view->'route' AS route,
            CASE WHEN c.open_channel_id IS NULL THEN NULL ELSE json_build_object(
              'openChannelId', c.open_channel_id::text, 'closedChannelId', c.closed_channel_id::text, 'title', c.title, 'texts', c.texts) END AS channel,
            CASE WHEN pl.plan_id IS NULL THEN NULL ELSE json_build_object(
              'planId', pl.plan_id, 'openChannelId', pl.open_channel_id::text, 'title', pl.title, 'priceUsd', pl.price_usd::text,
              'durationDays', pl.duration_days, 'active', pl.active) END AS plan
       FROM payments p
       -- Compared as bigint so the primary key serves the join; a non-numeric id simply finds no channel.
       LEFT JOIN channels c ON c.open_channel_id = CASE WHEN p.view->'route'->>'channelId' ~ '^-?[0-9]{1,18}$'
                                                        THEN (p.view->'route'->>'channelId')::bigint END
       -- Plan ids are unique per channel (migration 010): the plan is the route's channel's plan of that id.
       LEFT JOIN plans pl ON pl.open_channel_id = c.open_channel_id AND pl.plan_id = p.view->'route'->>'planId'
      WHERE p.payment_id = $1`;
