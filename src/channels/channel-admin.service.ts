import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { toDecimalString } from '../domain/money.js';
import { ConflictError, NotFoundError } from '../domain/errors.js';
import { inTransaction } from '../persistence/transaction.js';
import {
  ChannelInputError,
  channelSettingsSchema,
  type ChannelView,
  type CreateChannelInput,
  type PatchChannelInput,
  type PlanView,
} from './channel.schema.js';
import { findChannel, insertChannel, listChannels as listChannelRows, updateChannel as updateChannelRow, type ChannelRow, type ChannelSettings } from './channels.repo.js';
import { insertPlan, plansOfChannels, updatePlan, type NewPlan, type PlanRow } from './plans.repo.js';
import { saveChannelTexts } from './owner-texts.js';

// Channel administration shared by the admin API and the CLI, so both apply the same rules.
//
// Plans in a PATCH are upserted by plan_id within the channel (ids are unique per channel, so another
// channel's "month" is no concern here): an id of one of this channel's plans updates that plan
// with the fields given; an unknown id, or no id, adds a plan (all of title, price_usd, duration_days
// required). Plans are never deleted, because orders reference them; `"active": false` withdraws one.
// Settings are checked after merging the patch into the stored channel, so changing only `network`
// re-checks the stored wallet against it, and `strategy: "threshold"` needs a threshold either in the
// patch or already stored.

export const newPlanId = (): string => `plan_${randomBytes(8).toString('hex')}`;

const UNIQUE_VIOLATION = '23505';


/** Unique violations become 409s that name what is already taken. */
function conflict(error: unknown): never {
  const e = error as { code?: string; constraint?: string; detail?: string };
  if (e.code === UNIQUE_VIOLATION) {
    if (e.constraint === 'channels_pkey') throw new ConflictError('open_channel_id: this channel already exists; update it with PATCH /admin/channels/:open_channel_id');
    if (e.constraint === 'channels_closed_channel_id_key') throw new ConflictError('closed_channel_id: already used by another channel');
    if (e.constraint === 'plans_pkey') throw new ConflictError(`plan_id: this channel already has a plan with this id (${e.detail ?? 'duplicate'})`);
  }
  throw error;
}

export function planView(p: PlanRow): PlanView {
  return { plan_id: p.planId, title: p.title, price_usd: toDecimalString(p.priceUsd), duration_days: p.durationDays, active: p.active };
}

export function channelView(c: ChannelRow, plans: PlanRow[]): ChannelView {
  return {
    open_channel_id: c.openChannelId,
    closed_channel_id: c.closedChannelId,
    title: c.title,
    wallet_address: c.walletAddress,
    currency: c.currency,
    network: c.network,
    strategy: c.strategy,
    threshold_usd: c.thresholdUsd === null ? null : toDecimalString(c.thresholdUsd),
    platform_fee_percent: toDecimalString(c.platformFeePercent),
    plans: plans.map(planView),
    created_at: c.createdAt.toISOString(),
    updated_at: c.updatedAt.toISOString(),
  };
}

function settingsOf(input: Omit<CreateChannelInput, 'plans'> & { open_channel_id: string }): ChannelSettings {
  return {
    openChannelId: input.open_channel_id,
    closedChannelId: input.closed_channel_id,
    title: input.title,
    walletAddress: input.wallet_address,
    currency: input.currency,
    network: input.network,
    strategy: input.strategy,
    thresholdUsd: input.threshold_usd ?? null,
    platformFeePercent: input.platform_fee_percent,
  };
}

export async function createChannel(pool: pg.Pool, input: CreateChannelInput): Promise<ChannelView> {
  return inTransaction(pool, async (client) => {
    const channel = await insertChannel(client, settingsOf(input)).catch(conflict);
    const plans: PlanRow[] = [];
    for (const plan of input.plans) {
      const row: NewPlan = {
        planId: plan.plan_id ?? newPlanId(),
        openChannelId: channel.openChannelId,
        title: plan.title,
        priceUsd: plan.price_usd,
        durationDays: plan.duration_days,
        active: plan.active ?? true,
      };
      plans.push(await insertPlan(client, row).catch(conflict));
    }
    return channelView(channel, plans);
  });
}

export async function listChannels(pool: pg.Pool): Promise<ChannelView[]> {
  const channels = await listChannelRows(pool);
  const plans = await plansOfChannels(pool, channels.map((c) => c.openChannelId));
  return channels.map((c) => channelView(c, plans.filter((p) => p.openChannelId === c.openChannelId)));
}

export async function getChannel(pool: pg.Pool, openChannelId: string): Promise<ChannelView | null> {
  const channel = await findChannel(pool, openChannelId);
  return channel ? channelView(channel, await plansOfChannels(pool, [openChannelId])) : null;
}

export async function updateChannel(pool: pg.Pool, openChannelId: string, patch: PatchChannelInput): Promise<ChannelView> {
  return inTransaction(pool, async (client) => {
    // Locked so two concurrent PATCHes merge one after the other instead of overwriting each other.
    const current = await findChannel(client, openChannelId, { lock: true });
    if (!current) throw new NotFoundError(`open_channel_id: no channel ${openChannelId}; create it with POST /admin/channels`);
    const { plans: planPatches, ...settingsPatch } = patch;
    const merged = channelSettingsSchema.safeParse({
      open_channel_id: current.openChannelId,
      closed_channel_id: current.closedChannelId,
      title: current.title,
      wallet_address: current.walletAddress,
      currency: current.currency,
      network: current.network,
      strategy: current.strategy,
      threshold_usd: current.thresholdUsd === null ? null : toDecimalString(current.thresholdUsd),
      platform_fee_percent: toDecimalString(current.platformFeePercent),
      ...Object.fromEntries(Object.entries(settingsPatch).filter(([, v]) => v !== undefined)),
    });
    if (!merged.success) throw ChannelInputError.fromZod(merged.error);
    const channel = await updateChannelRow(client, settingsOf({ ...merged.data, open_channel_id: openChannelId })).catch(conflict);

    const existing = new Map((await plansOfChannels(client, [openChannelId])).map((p) => [p.planId, p]));
    const problems: { field: string; message: string }[] = [];
    const writes: Array<{ kind: 'insert' | 'update'; plan: NewPlan }> = [];
    for (const [i, p] of (planPatches ?? []).entries()) {
      const field = (name: string) => `plans.${i}.${name}`;
      const stored = p.plan_id === undefined ? undefined : existing.get(p.plan_id);
      if (stored) {
        writes.push({
          kind: 'update',
          plan: {
            planId: stored.planId,
            openChannelId,
            title: p.title ?? stored.title,
            priceUsd: p.price_usd ?? stored.priceUsd,
            durationDays: p.duration_days ?? stored.durationDays,
            active: p.active ?? stored.active,
          },
        });
        continue;
      }
      const missing = (['title', 'price_usd', 'duration_days'] as const).filter((k) => p[k] === undefined);
      for (const k of missing) problems.push({ field: field(k), message: 'is required for a new plan' });
      if (missing.length === 0) {
        writes.push({
          kind: 'insert',
          plan: { planId: p.plan_id ?? newPlanId(), openChannelId, title: p.title!, priceUsd: p.price_usd!, durationDays: p.duration_days!, active: p.active ?? true },
        });
      }
    }
    if (problems.length) throw new ChannelInputError(problems);
    for (const w of writes) {
      if (w.kind === 'insert') await insertPlan(client, w.plan).catch(conflict);
      else await updatePlan(client, w.plan);
    }
    // The owner's bot texts (GET /admin/channels/:id/texts shows them), under the same channel row lock.
    if (patch.texts !== undefined) await saveChannelTexts(client, openChannelId, patch.texts);
    return channelView(channel, await plansOfChannels(client, [openChannelId]));
  });
}
