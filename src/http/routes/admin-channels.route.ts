import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type pg from 'pg';
import { z } from 'zod';
import { createChannel, getChannel, listChannels, updateChannel } from '../../channels/channel-admin.service.js';
import { channelIdSchema, channelViewSchema, createChannelSchema, patchChannelSchema } from '../../channels/channel.schema.js';
import { InvalidInputError } from '../../domain/errors.js';
import type { PayoutTargetCheck } from '../../payouts/payout-target-check.js';
import { adminAuth } from '../plugins/admin-auth.js';
import { HttpError } from '../plugins/error-handler.js';

export interface AdminChannelsDeps {
  pool: pg.Pool;
  adminToken: string | undefined;
  /** Asks ChangeNow whether the owner's payout settings can be served (absent: not checked). */
  checkPayoutTarget?: PayoutTargetCheck;
}

/** Refuses settings ChangeNow cannot pay out, naming the field, before anything is saved. */
async function checkTarget(deps: AdminChannelsDeps, c: { currency: string; network: string; strategy: 'instant' | 'threshold'; threshold_usd: string | null; platform_fee_percent: string; plans: { price_usd: string; active?: boolean }[] }) {
  if (!deps.checkPayoutTarget) return;
  const problems = await deps.checkPayoutTarget({
    currency: c.currency,
    network: c.network,
    strategy: c.strategy,
    thresholdUsd: c.threshold_usd,
    feePercent: c.platform_fee_percent,
    plans: c.plans.flatMap((p, i) => (p.active === false ? [] : [{ field: `plans.${i}.price_usd`, priceUsd: p.price_usd }])),
  });
  if (problems.length) throw new InvalidInputError(problems);
}

const errorSchema = z.object({ error: z.string(), message: z.string() }).loose();
const security = [{ admin: [] }];
const errors = { 400: errorSchema, 401: errorSchema, 404: errorSchema, 409: errorSchema, 503: errorSchema };

/** POST/GET/PATCH /admin/channels, behind the admin bearer token; schemas are the CLI's, and feed /docs/openapi.json. */
export async function adminChannelsRoutes(app: FastifyInstance, deps: AdminChannelsDeps): Promise<void> {
  await app.register(
    async (admin) => {
      admin.addHook('onRequest', adminAuth(deps.adminToken));
      const r = admin.withTypeProvider<ZodTypeProvider>();

      r.post(
        '/channels',
        {
          schema: {
            tags: ['admin'],
            summary: 'Create a channel with its plans and owner payout settings',
            security,
            body: createChannelSchema,
            response: { 201: channelViewSchema, ...errors },
          },
        },
        async (request, reply) => {
          await checkTarget(deps, { ...request.body, threshold_usd: request.body.threshold_usd ?? null, platform_fee_percent: request.body.platform_fee_percent ?? '0' });
          return reply.status(201).send(await createChannel(deps.pool, request.body));
        },
      );

      r.get(
        '/channels',
        {
          schema: {
            tags: ['admin'],
            summary: 'List channels with their plans',
            security,
            response: { 200: z.object({ channels: z.array(channelViewSchema) }), 401: errorSchema, 503: errorSchema },
          },
        },
        async () => ({ channels: await listChannels(deps.pool) }),
      );

      r.get(
        '/channels/:open_channel_id',
        {
          schema: {
            tags: ['admin'],
            summary: 'One channel with its plans',
            security,
            params: z.object({ open_channel_id: channelIdSchema }),
            response: { 200: channelViewSchema, ...errors },
          },
        },
        async (request) => {
          const channel = await getChannel(deps.pool, request.params.open_channel_id);
          if (!channel) throw new HttpError(404, `no channel ${request.params.open_channel_id}`);
          return channel;
        },
      );

      r.patch(
        '/channels/:open_channel_id',
        {
          schema: {
            tags: ['admin'],
            summary: 'Update settings; plans are upserted by plan_id (no plan_id adds one; "active": false withdraws one)',
            security,
            params: z.object({ open_channel_id: channelIdSchema }),
            body: patchChannelSchema,
            response: { 200: channelViewSchema, ...errors },
          },
        },
        async (request) => {
          const current = await getChannel(deps.pool, request.params.open_channel_id);
          if (current) {
            const patch = request.body;
            await checkTarget(deps, {
              currency: patch.currency ?? current.currency,
              network: patch.network ?? current.network,
              strategy: patch.strategy ?? current.strategy,
              threshold_usd: patch.threshold_usd !== undefined ? patch.threshold_usd : current.threshold_usd,
              platform_fee_percent: patch.platform_fee_percent ?? current.platform_fee_percent,
              plans: current.plans.map((p) => ({ price_usd: patch.plans?.find((q) => q.plan_id === p.plan_id)?.price_usd ?? p.price_usd, active: p.active })),
            });
          }
          return updateChannel(deps.pool, request.params.open_channel_id, request.body);
        },
      );
    },
    { prefix: '/admin' },
  );
}
