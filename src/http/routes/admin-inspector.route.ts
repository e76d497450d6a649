import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type pg from 'pg';
import type { StateValue } from 'xstate';
import { z } from 'zod';
import type { Config } from '../../config.js';
import { paymentMachine } from '../../machines/payment.machine.js';
import { browserAssets, type AssetName } from '../../operator/inspector-assets.js';
import { JOURNAL_PAGE, journalAfter, journalUpTo, paymentHead, type JournalEntry } from '../../operator/inspector.repo.js';
import type { JournalWatch } from '../../operator/journal-feed.js';
import { createStatechartRenderer, type StatechartRenderer } from '../../operator/statechart.js';
import { inspectorPageCsp, renderInspectorPage } from '../pages/inspector.page.js';
import { renderStatechartPage, statechartPageCsp } from '../pages/statechart.page.js';
import { adminAuth } from '../plugins/admin-auth.js';
import { HttpError } from '../plugins/error-handler.js';

// Operators looking inside one payment: the Stately inspector replaying its journal (needs the
// operator's browser online, INSPECTOR_URL) and the offline statechart drawn on the server, both
// following the journal live. The pages and their scripts are public shells; every byte of payment
// data comes from the routes below the admin token. Everything here reads; nothing writes.

export interface AdminInspectorDeps {
  config: Config;
  pool: pg.Pool;
  /** The service's LISTEN connection on journal inserts; without it the stream answers 503. */
  journalFeed?: JournalWatch | null;
  /** Injected by tests; one per app otherwise. */
  statechart?: StatechartRenderer;
}

const params = z.object({ payment_id: z.string().min(1).max(100) });
const afterQuery = z.object({ after: z.coerce.number().int().min(0).max(2_147_483_647).default(0) });

/** How often an idle stream sends a comment, so proxies and browsers keep it open. */
const KEEPALIVE_MS = 20_000;

export async function adminInspectorRoutes(app: FastifyInstance, deps: AdminInspectorDeps): Promise<void> {
  const assets = browserAssets();
  const statechart = deps.statechart ?? createStatechartRenderer(paymentMachine);
  const streams = new Set<ServerResponse>();

  // The shells: public, no data in them (like /admin/dashboard).
  const page = (reply: FastifyReply, csp: string, html: string) =>
    reply
      .header('content-security-policy', csp)
      .header('referrer-policy', 'no-referrer')
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(html);
  const nonce = () => randomBytes(16).toString('base64');
  const typedPublic = app.withTypeProvider<ZodTypeProvider>();
  typedPublic.get('/admin/payments/:payment_id/inspect', { schema: { hide: true, params } }, async (_request, reply) => {
    const n = nonce();
    return page(reply, inspectorPageCsp(n, deps.config.INSPECTOR_URL), renderInspectorPage(n, { inspectorUrl: deps.config.INSPECTOR_URL }));
  });
  typedPublic.get('/admin/payments/:payment_id/statechart', { schema: { hide: true, params } }, async (_request, reply) => {
    const n = nonce();
    return page(reply, statechartPageCsp(n), renderStatechartPage(n));
  });
  const serveAsset = (name: AssetName) => async (request: FastifyRequest, reply: FastifyReply) => {
    const asset = (await assets())[name];
    reply.header('etag', asset.etag).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff');
    if (request.headers['if-none-match'] === asset.etag) return reply.status(304).send();
    return reply.type('text/javascript; charset=utf-8').send(asset.code);
  };
  const assetSchema = (page: string) => ({ tags: ['operator'], summary: `Script of the ${page} page, bundled from src/operator (no data in it; ETag)` });
  app.get('/admin/assets/inspector.js', { schema: assetSchema('inspector') }, serveAsset('inspector'));
  app.get('/admin/assets/statechart.js', { schema: assetSchema('statechart') }, serveAsset('statechart'));

  // Open streams end when the app closes (a stream never ends by itself, and Fastify waits for them).
  app.addHook('preClose', async () => {
    for (const res of streams) res.end();
    streams.clear();
  });

  await app.register(async (scope) => {
    scope.addHook('onRequest', adminAuth(deps.config.ADMIN_TOKEN));
    const typed = scope.withTypeProvider<ZodTypeProvider>();
    const security = [{ admin: [] }];

    const headOrThrow = async (paymentId: string) => {
      const head = await paymentHead(deps.pool, paymentId);
      if (!head) throw new HttpError(404, `No payment ${paymentId}.`);
      return head;
    };

    typed.get(
      '/admin/payments/:payment_id/journal',
      { schema: { tags: ['operator'], security, params, summary: 'A payment as stored and its journal with every event payload, oldest first (what the inspector replays)' } },
      async (request) => {
        const payment = await headOrThrow(request.params.payment_id);
        // Read up to the version just read, so the journal ends exactly where the stored state is.
        return { payment, journal: await journalUpTo(deps.pool, payment.payment_id, payment.version) };
      },
    );

    typed.get(
      '/admin/payments/:payment_id/journal/stream',
      {
        schema: {
          tags: ['operator'],
          security,
          params,
          querystring: afterQuery,
          summary: 'Journal rows after ?after=<seq> as they commit (text/event-stream: event "journal", id = seq, data = the row)',
        },
      },
      async (request, reply) => {
        if (!deps.journalFeed) throw new HttpError(503, 'The live journal is not available in this process (no LISTEN connection).');
        const { payment_id: paymentId } = request.params;
        const lastEventId = Number(request.headers['last-event-id']);
        let last = Number.isSafeInteger(lastEventId) && lastEventId > request.query.after ? lastEventId : request.query.after;
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          'x-accel-buffering': 'no',
          'x-content-type-options': 'nosniff',
          // The connection ends with the stream: a kept-alive socket would hold the server's close for its timeout.
          connection: 'close',
        });
        res.write('retry: 2000\n\n');
        streams.add(res);

        let closed = false;
        let reading = false;
        let again = false;
        const send = (row: JournalEntry) => res.write(`id: ${row.seq}\nevent: journal\ndata: ${JSON.stringify(row)}\n\n`);
        // One read at a time per stream; a notification during a read asks for one more.
        const pump = async () => {
          if (reading) {
            again = true;
            return;
          }
          reading = true;
          try {
            do {
              again = false;
              const rows = await journalAfter(deps.pool, paymentId, last);
              for (const row of rows) {
                if (closed) return;
                send(row);
                last = row.seq;
              }
              // A full page: there may be more.
              if (rows.length >= JOURNAL_PAGE) again = true;
            } while (again && !closed);
          } catch (error) {
            // The client reconnects with the last id it has; nothing is lost.
            request.log.warn({ err: error, paymentId }, 'journal stream: read failed; closing the stream');
            stop();
          } finally {
            reading = false;
          }
        };
        const keepalive = setInterval(() => res.write(': keep-alive\n\n'), KEEPALIVE_MS);
        keepalive.unref();
        // Watch first, then catch up: a row committed in between is read by one or the other.
        const unwatch = deps.journalFeed.watch(paymentId, () => void pump());
        const stop = () => {
          if (closed) return;
          closed = true;
          clearInterval(keepalive);
          unwatch();
          streams.delete(res);
          res.end();
        };
        res.on('close', stop);
        void pump();
      },
    );

    typed.get(
      '/admin/payments/:payment_id/statechart.svg',
      { schema: { tags: ['operator'], security, params, summary: 'The statechart as SVG with this payment\'s current states and the path it took highlighted' } },
      async (request, reply) => {
        const payment = await headOrThrow(request.params.payment_id);
        const journal = await journalUpTo(deps.pool, payment.payment_id, payment.version);
        const steps = journal.map((row) => ({ event_type: row.event_type, from_state: row.from_state as StateValue | null, to_state: row.to_state as StateValue }));
        const svg = await statechart.paymentSvg(steps, payment.state_value as StateValue);
        return reply.type('image/svg+xml; charset=utf-8').header('cache-control', 'no-store').send(svg);
      },
    );

    scope.get('/admin/machine.svg', { schema: { tags: ['operator'], security, summary: 'The payment statechart as SVG, drawn offline on the server from the machine' } }, async (_request, reply) =>
      reply.type('image/svg+xml; charset=utf-8').send(await statechart.machineSvg()),
    );
  });
}
