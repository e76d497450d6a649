import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Engine } from '../persistence/apply-event.js';
import { getDelivery, markDelivery, storeDelivery } from './ipn-deliveries.repo.js';
import { mapIpnBody } from './ipn-to-event.js';
import { ipnProcessed } from './ipn.metrics.js';

// What happens to a verified IPN: store it as received (deduped by the hash of its bytes), then map
// it to a machine event and apply it through the one path (engine.applyEvent).
//
// Outcomes and why:
// - applied / duplicate: the machine took it, or already had it (replay, stale status).
// - parked: verified but not understood (unknown status, unusable payment_id). Answering 4xx/5xx would make
//   NowPayments retry a body that will never parse; we keep it and answer 200. An operator resumes it
//   with replayDelivery(id) once the cause is fixed (a parser update, or the data explained).
// - stored: kept, but applying it threw (database hiccup, a missing queue). We hold the body, so we answer
//   200 rather than make NowPayments retry forever; reconciliation re-applies stored-but-unapplied
//   deliveries, and an identical re-send re-applies it at once. Only a failure to *store* is a 5xx.

export type IpnOutcome =
  | { status: 'applied' | 'duplicate'; deliveryId: string; paymentId: string | null; /** null when answered from the stored delivery. */ version: number | null }
  | { status: 'parked'; deliveryId: string; paymentId: string | null; problem: string }
  | { status: 'stored'; deliveryId: string; paymentId: string | null; problem: string };

export interface IpnServiceDeps {
  pool: pg.Pool;
  engine: Engine;
  log: Logger;
}

export interface IpnService {
  /** `raw` are the request bytes, `body` their JSON.parse; the signature was verified by the caller. */
  receive(raw: Buffer, body: unknown): Promise<IpnOutcome>;
  /** Re-parses a stored delivery and applies it (reconciliation, operators). Never re-verifies: only verified bodies are stored. */
  replayDelivery(id: string, source?: string): Promise<IpnOutcome>;
}

export function createIpnService(deps: IpnServiceDeps): IpnService {
  const { pool, engine, log } = deps;

  async function apply(deliveryId: string, body: unknown, source: string): Promise<IpnOutcome> {
    const mapping = mapIpnBody(body);
    if (!mapping.ok) {
      await markDelivery(pool, deliveryId, { status: 'parked', problem: mapping.problem, paymentId: mapping.paymentId });
      log.warn({ deliveryId, paymentId: mapping.paymentId, problem: mapping.problem }, 'verified IPN parked: it cannot be understood; resume with replayDelivery');
      ipnProcessed.inc({ outcome: 'parked' });
      return { status: 'parked', deliveryId, paymentId: mapping.paymentId, problem: mapping.problem };
    }
    const { paymentId, event } = mapping;
    try {
      const result = await engine.applyEvent(paymentId, event, { source });
      await markDelivery(pool, deliveryId, { status: result.outcome, eventType: event.type, appliedVersion: result.outcome === 'applied' ? result.version : null, paymentId });
      log.info({ deliveryId, paymentId, event: event.type, outcome: result.outcome, state: result.state, source }, 'IPN applied');
      ipnProcessed.inc({ outcome: result.outcome });
      return { status: result.outcome, deliveryId, paymentId, version: result.version };
    } catch (error) {
      const problem = `applying ${event.type} failed: ${(error as Error).message}`;
      log.error({ deliveryId, paymentId, err: error }, 'IPN stored but applying it failed; reconciliation will re-apply it');
      await markDelivery(pool, deliveryId, { status: 'failed', problem, eventType: event.type, paymentId }).catch((err: unknown) =>
        log.error({ deliveryId, err }, 'could not mark the IPN delivery failed; it stays "received" and is re-applied all the same'),
      );
      ipnProcessed.inc({ outcome: 'stored' });
      return { status: 'stored', deliveryId, paymentId, problem };
    }
  }

  return {
    async receive(raw, body) {
      const mapping = mapIpnBody(body);
      const stored = await storeDelivery(pool, {
        bodyHash: createHash('sha256').update(raw).digest('hex'),
        rawBody: raw.toString('utf8'),
        paymentId: mapping.paymentId,
        paymentStatus: mapping.ok ? mapping.event.type.slice(3) : null,
      });
      // The same bytes again. If the first one was applied (or parked) there is nothing new; if it was
      // stored but not applied (failed, or still in flight), applying again is safe: applyEvent is idempotent.
      if (!stored.inserted && stored.status !== 'received' && stored.status !== 'failed') {
        ipnProcessed.inc({ outcome: 'duplicate' });
        return stored.status === 'parked'
          ? { status: 'parked', deliveryId: stored.id, paymentId: mapping.paymentId, problem: mapping.ok ? 'parked earlier' : mapping.problem }
          : { status: 'duplicate', deliveryId: stored.id, paymentId: mapping.paymentId, version: null };
      }
      return apply(stored.id, body, 'ipn');
    },

    async replayDelivery(id, source = 'replay') {
      const row = await getDelivery(pool, id);
      if (!row) throw new Error(`no IPN delivery ${id}`);
      // raw_body, not the jsonb copy: a payment_id above 2^53 is only exact in the original text.
      return apply(row.id, JSON.parse(row.raw_body) as unknown, source);
    },
  };
}
