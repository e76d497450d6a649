import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type pg from 'pg';
import { z } from 'zod';
import { ConflictError, NotFoundError } from '../../domain/errors.js';
import { checkBooks } from '../../payouts/books.js';
import { balances, ledgerOf } from '../../payouts/ledger.repo.js';
import { findBatch } from '../../payouts/payout-batches.repo.js';
import { chainTxOf, entryJson, payoutJson, type ChainTxView } from '../../payouts/payout-views.js';
import { findPayout, listPayouts } from '../../payouts/payouts.repo.js';
import { adminAuth } from '../plugins/admin-auth.js';

// Operators and owners' accountants: the ledger, balances per channel, every payout with its exchange,
// transaction (nonce, confirmations) and ledger entries, the books check, and resuming a parked batch.
// Reads only, except the batch resume, which goes through the batch's own job chain.

export interface AdminPayoutsDeps {
  pool: pg.Pool;
  adminToken: string | undefined;
  /** The node's word on a stored transaction (confirmations), for the payout detail. */
  txStatus(txKey: string): Promise<ChainTxView>;
  /** Resumes a batch parked for review under a new job; false when it is not parked. */
  resumeBatch(batchId: string): Promise<boolean>;
}

const channelId = z.string().regex(/^-?\d{1,18}$/, 'a Telegram channel id like -1001234567890');
const security = [{ admin: [] }];
const units = (value: bigint) => value.toString();

export async function adminPayoutsRoutes(app: FastifyInstance, deps: AdminPayoutsDeps): Promise<void> {
  app.addHook('onRequest', adminAuth(deps.adminToken));
  const typed = app.withTypeProvider<ZodTypeProvider>();

  typed.get(
    '/admin/ledger',
    {
      schema: {
        tags: ['payouts'],
        security,
        summary: 'Ledger entries, newest first (base units of ETH as decimal strings), with every channel balance',
        querystring: z.object({ channel: channelId.optional(), before: z.string().regex(/^\d{1,18}$/).optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) }),
      },
    },
    async (request) => {
      const all = await balances(deps.pool);
      return {
        entries: (await ledgerOf(deps.pool, { openChannelId: request.query.channel ?? null, limit: request.query.limit, before: request.query.before ?? null })).map(entryJson),
        balances: all
          .filter((b) => !request.query.channel || b.openChannelId === request.query.channel)
          .map((b) => ({ ...b, openUnits: units(b.openUnits), pendingUnits: units(b.pendingUnits), paidOutUnits: units(b.paidOutUnits), feeUnits: units(b.feeUnits), exchangeDifferenceUnits: units(b.exchangeDifferenceUnits) })),
      };
    },
  );

  typed.get('/admin/ledger/check', { schema: { tags: ['payouts'], security, summary: 'Proves the books balance: payouts + fees + differences + open balances = settled outcomes, exactly' } }, async () => {
    const client = await deps.pool.connect();
    try {
      // One snapshot for every sum.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const books = await checkBooks(client);
      await client.query('COMMIT');
      return books;
    } finally {
      client.release();
    }
  });

  typed.get(
    '/admin/payouts',
    {
      schema: {
        tags: ['payouts'],
        security,
        summary: 'Payouts, newest first; q finds one by payout, payment, batch, exchange id or transaction hash',
        querystring: z.object({
          channel: channelId.optional(),
          status: z.enum(['planned', 'exchange_created', 'sent', 'settled', 'review']).optional(),
          q: z.string().trim().min(1).max(200).optional(),
          limit: z.coerce.number().int().min(1).max(500).default(100),
        }),
      },
    },
    async (request) => ({
      payouts: (await listPayouts(deps.pool, { openChannelId: request.query.channel ?? null, status: request.query.status ?? null, search: request.query.q ?? null, limit: request.query.limit })).map(payoutJson),
    }),
  );

  typed.get(
    '/admin/payouts/:payout_id',
    { schema: { tags: ['payouts'], security, summary: 'One payout: exchange, transaction (nonce, confirmations), batch, ledger entries', params: z.object({ payout_id: z.string().min(1).max(200) }) } },
    async (request) => {
      const payout = await findPayout(deps.pool, request.params.payout_id);
      if (!payout) throw new NotFoundError(`No payout ${request.params.payout_id}.`);
      const batch = payout.batchId ? await findBatch(deps.pool, payout.batchId) : null;
      return {
        payout: payoutJson(payout),
        transaction: payout.txKey ? await chainTxOf(deps.pool, payout.txKey, deps.txStatus) : null,
        batch: batch ? { ...batch, totalUnits: units(batch.totalUnits) } : null,
        ledger: (await deps.pool.query(`SELECT entry_id::text FROM ledger_entries WHERE payout_id = $1`, [payout.payoutId])).rows.length
          ? (await ledgerOf(deps.pool, { openChannelId: payout.openChannelId, limit: 1000 })).filter((e) => e.payoutId === payout.payoutId).map(entryJson)
          : [],
      };
    },
  );

  typed.get(
    '/admin/payout-batches',
    { schema: { tags: ['payouts'], security, summary: 'Threshold batches, newest first', querystring: z.object({ channel: channelId.optional(), status: z.enum(['claimed', 'paying', 'settled', 'review']).optional() }) } },
    async (request) => ({
      batches: (
        await deps.pool.query(
          `SELECT batch_id, open_channel_id::text, total_units::text, trim_scale(usd_value)::text AS usd_value, entry_count, status, review_reason, attempt, created_at, settled_at
             FROM payout_batches WHERE ($1::bigint IS NULL OR open_channel_id = $1) AND ($2::text IS NULL OR status = $2)
            ORDER BY created_at DESC LIMIT 200`,
          [request.query.channel ?? null, request.query.status ?? null],
        )
      ).rows,
    }),
  );

  typed.post(
    '/admin/payout-batches/:batch_id/retry',
    { schema: { tags: ['payouts'], security, summary: 'Resume a batch parked for review from the step it reached (never a second exchange or transaction)', params: z.object({ batch_id: z.uuid() }) } },
    async (request) => {
      const batch = await findBatch(deps.pool, request.params.batch_id);
      if (!batch) throw new NotFoundError(`No batch ${request.params.batch_id}.`);
      if (!(await deps.resumeBatch(batch.batchId))) throw new ConflictError(`Batch ${batch.batchId} is ${batch.status}, not parked for review; nothing changed.`);
      request.log.info({ batchId: batch.batchId }, 'operator resumed a payout batch');
      return { batch_id: batch.batchId, status: 'paying' };
    },
  );
}
