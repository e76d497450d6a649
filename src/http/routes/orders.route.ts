import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { channelIdSchema, planIdSchema, userIdSchema } from '../../channels/channel.schema.js';
import type { OrderService } from '../../orders/order.service.js';

const errorSchema = z.object({ error: z.string(), message: z.string() }).loose();

/** POST /api/orders: a buyer's order for a plan, answered with the NowPayments invoice to pay. */
export async function ordersRoutes(app: FastifyInstance, deps: { orderService: OrderService; rateLimitPerMinute: number }): Promise<void> {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/api/orders',
    {
      // Unauthenticated and each call creates an invoice at NowPayments: limited per client IP.
      config: { rateLimit: { max: deps.rateLimitPerMinute, timeWindow: '1 minute' } },
      schema: {
        tags: ['orders'],
        summary: 'Create an order and its NowPayments invoice',
        body: z.strictObject({
          telegram_user_id: userIdSchema,
          open_channel_id: channelIdSchema,
          plan_id: planIdSchema,
          lang: z
            .string()
            .regex(/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$/, 'a language tag such as "en" or "ru"')
            .optional()
            .meta({ description: "The buyer's language (e.g. Telegram's language_code): the status_url and cancel page speak it" }),
        }),
        response: {
          201: z.object({
            order_id: z.string(),
            invoice_url: z.string(),
            status_url: z.string().meta({ description: 'The success page, carrying the signed status token' }),
          }),
          400: errorSchema,
          404: errorSchema,
          502: errorSchema,
          503: errorSchema,
        },
      },
    },
    async (request, reply) => {
      const order = await deps.orderService.createOrder({
        buyerTelegramId: request.body.telegram_user_id,
        openChannelId: request.body.open_channel_id,
        planId: request.body.plan_id,
        source: 'api',
        lang: request.body.lang,
      });
      return reply.status(201).send({ order_id: order.orderId, invoice_url: order.invoiceUrl, status_url: order.statusUrl });
    },
  );
}
