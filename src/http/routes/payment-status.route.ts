import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type pg from 'pg';
import { z } from 'zod';
import { createPaymentStatusReader, STEPS, type PaymentStatusView } from '../../intake/payment-status.js';
import type { JournalWatch } from '../../operator/journal-feed.js';
import { pickLanguage, type Dictionary } from '../pages/i18n/index.js';
import { HttpError } from '../plugins/error-handler.js';
import { quietLevel } from '../quiet-route.js';

export interface PaymentStatusRouteDeps {
  pool: pg.Pool;
  statusTokenSecret: string;
  /** Requests per minute per client IP. */
  rateLimitPerMinute: number;
  /** The process's journal feed: with it, answers are cached until a notification outdates them. */
  journalFeed?: JournalWatch | null;
}

const querystring = z.object({
  order_id: z.string().trim().min(1, 'order_id is required').max(200),
  token: z.string().max(200).optional(),
  lang: z.string().max(35).optional().meta({ description: 'The language of `description` ("en", "ru"); else Accept-Language, else English' }),
});

/** The 200 answer as documented (OpenAPI); the handler's PaymentStatusView is checked against it at compile time below. */
export const statusView = z.object({
  order_id: z.string(),
  state: z.string().nullable(),
  step: z.enum(STEPS),
  description: z.string(),
  final: z.boolean(),
  updated_at: z.string(),
  state_entered_at: z.string(),
  order: z.object({ channel_title: z.string().nullable(), plan_title: z.string().nullable(), duration_days: z.number().nullable(), price_usd: z.string() }).nullable(),
  paid: z.object({ amount: z.string(), currency: z.string(), expected: z.string().nullable(), missing: z.string().nullable() }).nullable()
    .meta({ description: 'What arrived in the pay currency and what is missing (with the token only)' }),
  access_ends_at: z.string().nullable().meta({ description: 'When the access this order granted ends (with the token only)' }),
  invoice_url: z.string().nullable().meta({ description: 'The invoice, to pay the rest of an underpayment (with the token only)' }),
  failure: z.enum(['failed', 'expired', 'refunded', 'cancelled']).nullable(),
  invite: z.object({ url: z.string(), expires_at: z.string().nullable(), single_use: z.literal(true) }).nullable(),
  invite_undeliverable: z.boolean(),
});

// The view readPaymentStatus builds is exactly the documented answer: no field more, none less, same types.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const viewIsDocumented: Same<PaymentStatusView, z.infer<typeof statusView>> = true;
void viewIsDocumented;

// The answer is serialised with plain JSON.stringify: readPaymentStatus builds the view field by field
// and its type is the schema's (checked above), so zod's encode on every poll (a validating copy,
// three times the cost of the stringify) would only copy it. The schema stays for the docs.
// A cached answer is one frozen object handed to every poll of its order (per token verdict and
// language): its JSON is made once and kept as long as the object lives.
const serializeView = (): ((data: unknown) => string) => {
  const json = new WeakMap<object, string>();
  return (data) => {
    if (data === null || typeof data !== 'object' || !Object.isFrozen(data)) return JSON.stringify(data);
    let text = json.get(data);
    if (text === undefined) json.set(data, (text = JSON.stringify(data)));
    return text;
  };
};

// Every poll of a page names the same ?lang= and Accept-Language: parsing the header once per distinct
// value (bounded in number and length; a client sending endless variants just starts it over) keeps that off the poll.
const languages = new Map<string, Dictionary>();
function languageOf(lang: string | undefined, acceptLanguage: string | undefined): Dictionary {
  const key = `${lang ?? ''}\n${acceptLanguage ?? ''}`;
  if (key.length > 256) return pickLanguage(lang, acceptLanguage);
  let dict = languages.get(key);
  if (!dict) {
    if (languages.size >= 256) languages.clear();
    languages.set(key, (dict = pickLanguage(lang, acceptLanguage)));
  }
  return dict;
}

// The rate limit covers this route only (webhooks from NowPayments must never be throttled by a
// buyer's polling); @fastify/rate-limit itself is registered once in src/http/app.ts.
export async function paymentStatusRoutes(app: FastifyInstance, deps: PaymentStatusRouteDeps): Promise<void> {
  const reader = createPaymentStatusReader({
    pool: deps.pool,
    statusTokenSecret: deps.statusTokenSecret,
    journalFeed: deps.journalFeed ?? null,
    onError: (err) => app.log.warn({ err }, 'payment status cache: looking up the orders of notified payments failed; every cached answer was dropped'),
  });
  app.addHook('onClose', async () => reader.close());
  app.withTypeProvider<ZodTypeProvider>().get(
    '/api/payment-status',
    {
      config: { rateLimit: { max: deps.rateLimitPerMinute, timeWindow: '1 minute' } },
      logLevel: quietLevel(app),
      serializerCompiler: serializeView,
      schema: {
        summary: "A payment's progress for the buyer (pure read; the invite link only with the order's status token)",
        querystring,
        response: { 200: statusView },
      },
    },
    async (request, reply) => {
      const dict = languageOf(request.query.lang, request.headers['accept-language']);
      const view = await reader.read({ orderId: request.query.order_id, token: request.query.token }, dict.describeStatus);
      if (!view) {
        throw new HttpError(404, `No order or payment is known under order_id ${JSON.stringify(request.query.order_id)}. Check the link you were given with your order.`);
      }
      // The answer can carry an invite link: never cached, by the browser or anything in between.
      return reply.header('cache-control', 'no-store').send(view);
    },
  );
}
