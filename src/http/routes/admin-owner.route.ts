import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type pg from 'pg';
import { z } from 'zod';
import { userIdSchema, channelIdSchema } from '../../channels/channel.schema.js';
import { accessChangeSchema, adjustmentsOf, changeAccess, type OwnerAccessDeps } from '../../channels/owner-access.js';
import { channelReport, channelSubscribers, reportQuerySchema, subscribersQuerySchema } from '../../channels/owner-reports.js';
import { channelTexts, textsView } from '../../channels/owner-texts.js';
import { NotConfiguredError, NotFoundError } from '../../domain/errors.js';
import { ownerPage } from '../pages/owner.page.js';
import { adminAuth } from '../plugins/admin-auth.js';

// The channel owner's tools, behind the admin token: subscribers with their end dates, money per
// period, manual access changes (recorded: who, why, when) and the bot texts in effect. The page at
// /admin/channels/:id/owner is a public static shell that reads these routes with the token it asks for.

export interface AdminOwnerDeps {
  pool: pg.Pool;
  adminToken: string | undefined;
  /** What grant/extend/revoke need (the Bot API, pg-boss, reminder offsets); absent: they answer 503. */
  access: OwnerAccessDeps | null;
}

const channelParams = z.object({ open_channel_id: channelIdSchema });
const buyerParams = z.object({ open_channel_id: channelIdSchema, telegram_user_id: userIdSchema });
const adjustmentsQuery = z.object({ buyer: userIdSchema.optional(), limit: z.coerce.number().int().min(1).max(500).default(100) });
const security = [{ admin: [] }];

export async function adminOwnerRoutes(app: FastifyInstance, deps: AdminOwnerDeps): Promise<void> {
  const page = ownerPage();
  const typedPublic = app.withTypeProvider<ZodTypeProvider>();
  typedPublic.get('/admin/channels/:open_channel_id/owner', { schema: { hide: true, params: channelParams } }, async (_request, reply) =>
    reply
      .header('content-security-policy', page.csp)
      .header('referrer-policy', 'no-referrer')
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(page.html),
  );

  await app.register(async (scope) => {
    scope.addHook('onRequest', adminAuth(deps.adminToken));
    const typed = scope.withTypeProvider<ZodTypeProvider>();

    typed.get(
      '/admin/channels/:open_channel_id/subscribers',
      {
        schema: {
          tags: ['owner'],
          security,
          params: channelParams,
          querystring: subscribersQuerySchema,
          summary: 'Subscribers with their end dates: active (soonest to end first), expired (not removed yet), removed; counts by status',
        },
      },
      async (request) => channelSubscribers(deps.pool, request.params.open_channel_id, request.query),
    );

    typed.post(
      '/admin/channels/:open_channel_id/subscribers/:telegram_user_id',
      {
        schema: {
          tags: ['owner'],
          security,
          params: buyerParams,
          body: accessChangeSchema,
          summary:
            'Grant, extend (by a duration) or revoke one buyer\'s access by hand, recorded with who and why. grant: refused while access runs (409, use extend); a buyer not in the channel gets a single-use invite by DM. extend: not for a removed buyer (409, use grant). revoke: ends access now and removes the member (ban, then unban only_if_banned); a later payment grants again',
        },
      },
      async (request) => {
        if (!deps.access) throw new NotConfiguredError('manual access changes need the Bot API and the job queue: this process was built without them');
        return changeAccess(deps.access, request.params.open_channel_id, request.params.telegram_user_id, request.body);
      },
    );

    typed.get(
      '/admin/channels/:open_channel_id/adjustments',
      { schema: { tags: ['owner'], security, params: channelParams, querystring: adjustmentsQuery, summary: 'Manual access changes of the channel (or of one ?buyer=), newest first' } },
      async (request) => ({
        adjustments: await adjustmentsOf(deps.pool, request.params.open_channel_id, {
          ...(request.query.buyer !== undefined && { buyerTelegramId: request.query.buyer }),
          limit: request.query.limit,
        }),
      }),
    );

    typed.get(
      '/admin/channels/:open_channel_id/report',
      {
        schema: {
          tags: ['owner'],
          security,
          params: channelParams,
          querystring: reportQuerySchema,
          summary:
            'Revenue, owner share, payouts and what is owed, per day, ISO week or month (UTC), from the ledger: ETH in base units (wei) and ETH as decimal strings, USD as decimal strings',
        },
      },
      async (request) => channelReport(deps.pool, request.params.open_channel_id, request.query),
    );

    typed.get(
      '/admin/channels/:open_channel_id/texts',
      { schema: { tags: ['owner'], security, params: channelParams, summary: 'The bot texts of the channel: the owner\'s (texts), what each message says in effect, the defaults' } },
      async (request) => {
        const texts = await channelTexts(deps.pool, request.params.open_channel_id);
        if (texts === undefined) throw new NotFoundError(`open_channel_id: no channel ${request.params.open_channel_id}`);
        return textsView(texts);
      },
    );
  });
}
