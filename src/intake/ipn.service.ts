import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import type { Logger } from 'pino';
import { findJsonProblem, sanitizeJson } from '../domain/text.js';
import type { PaymentSnapshot } from '../machines/payment.step.js';
import type { Engine } from '../persistence/apply-event.js';
import { isDataError, isDatabaseUnavailable } from '../persistence/database.js';
import { deliveryWrittenWith, findByHash, getDelivery, insertDeliveryWithOutcome, markDelivery, seenDelivery, storeDelivery, type DeliveryUpdate, type NewDelivery } from './ipn-deliveries.repo.js';
import { mapIpnBody, type IpnMapping } from './ipn-to-event.js';
import { ipnProcessed } from './ipn.metrics.js';

// What happens to a verified IPN: store it as received (deduped by the hash of its bytes), then map
// it to a machine event and apply it through the one path (engine.applyEvent).
//
// Outcomes and why:
// - applied / duplicate: the machine took it, or already had it (replay, stale status).
// - parked: verified but never applicable as it stands, with the reason in `problem`: not understood
//   (unknown status, unusable payment_id, a field too long), text Postgres cannot hold (NUL, an unpaired
//   surrogate, anywhere in the body), an order_id other than the one the payment already has (both are
//   named), or applying it failed in a way that fails again every time (Postgres refused a value, the
//   machine threw on it). Answering 4xx/5xx would make NowPayments retry a body that will never apply; we
//   keep it and answer 200. An operator resumes it with replayDelivery(id) once the cause is fixed.
// - stored: kept, but applying it failed for a reason of the moment (database hiccup, a missing queue).
//   We hold the body, so we answer 200 rather than make NowPayments retry forever; reconciliation
//   re-applies stored-but-unapplied deliveries, and an identical re-send re-applies it at once. Only a
//   failure to *store* (the database unreachable) is a 5xx: whatever a body contains, it can be stored.
//
// Cost: a usable IPN is stored, applied and marked in ONE transaction (the delivery row, written once
// with its outcome, the payment, its journal and its jobs commit together). If anything in it fails, it all rolls back and the IPN
// takes the careful path: stored on its own first, then applied, so "stored even if applying fails"
// holds exactly as before. A re-sent body already applied costs one statement and writes nothing (the
// write that loses answers the payment it found and the stored delivery of these bytes), or no statement
// at all when this process applied it (settled, below).

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
  // Bodies this process stored and applied, by the hash of their bytes -> their delivery id, remembered
  // once the transaction committed. NowPayments re-sends the same bytes (retries, every status again):
  // such a re-send is answered from here, no database round trip and nothing written. Only settled
  // outcomes (applied, or the machine already had it) are remembered; a body stored but not applied is
  // always looked up, so its re-send still re-applies it. Another instance, or this one after a restart,
  // finds the stored row instead: the answer is the same.
  // The answer needs nothing of the body, so a remembered re-send is not even mapped.
  const settled = new LRUCache<string, { deliveryId: string; paymentId: string | null }>({ max: 20_000 });

  async function park(deliveryId: string, paymentId: string | null, problem: string, eventType: string | null = null): Promise<IpnOutcome> {
    await markDelivery(pool, deliveryId, { status: 'parked', problem, paymentId, eventType });
    log.warn({ deliveryId, paymentId, problem }, 'verified IPN parked: it cannot be applied as it stands; resume with replayDelivery');
    ipnProcessed.inc({ outcome: 'parked' });
    return { status: 'parked', deliveryId, paymentId, problem };
  }

  /** Why this IPN must not touch the payment it names: it carries another order_id than the payment has. */
  function orderConflict(paymentId: string, orderId: string | null | undefined) {
    return (snapshot: PaymentSnapshot | null): string | null => {
      const known = snapshot?.context.orderId;
      if (!orderId || !known || known === orderId) return null;
      return `order_id ${JSON.stringify(orderId)} differs from order_id ${JSON.stringify(known)} of payment ${paymentId}; the payment is unchanged`;
    };
  }

  /**
   * A dropped connection or a failover fails one attempt; the next one gets another connection. Two
   * quick retries of that case only (applyEvent is idempotent) save the buyer the wait for
   * reconciliation; anything else, or what still fails, is answered "stored" as before.
   */
  async function applyWithRetries<T>(attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        if (n >= 3 || !isDatabaseUnavailable(error)) throw error;
        log.warn({ err: error, attempt: n }, 'the database connection dropped while applying an IPN; trying again');
      }
    }
  }

  async function apply(deliveryId: string, body: unknown, source: string, mapping: IpnMapping = mapIpnBody(body)): Promise<IpnOutcome> {
    if (!mapping.ok) return park(deliveryId, mapping.paymentId, mapping.problem);
    const { paymentId, event } = mapping;
    // Text Postgres cannot hold in a field the event does not carry: the body is kept (sanitised in the
    // queryable copy), but a NowPayments body with a NUL in it needs a person before it moves money.
    const unsafe = findJsonProblem(body, '');
    if (unsafe) return park(deliveryId, paymentId, `${unsafe.field}: ${unsafe.message}`, event.type);
    try {
      const result = await applyWithRetries(() => engine.applyEvent(paymentId, event, { source, refuse: orderConflict(paymentId, event.facts.orderId) }));
      if (result.outcome === 'refused') return park(deliveryId, paymentId, result.reason, event.type);
      await markDelivery(pool, deliveryId, { status: result.outcome, eventType: event.type, appliedVersion: result.outcome === 'applied' ? result.version : null, paymentId });
      log.info({ deliveryId, paymentId, event: event.type, outcome: result.outcome, state: result.state, source }, 'IPN applied');
      ipnProcessed.inc({ outcome: result.outcome });
      return { status: result.outcome, deliveryId, paymentId, version: result.version };
    } catch (error) {
      if (alwaysFails(error)) {
        log.error({ deliveryId, paymentId, err: error }, 'applying a verified IPN fails for this body every time; parked');
        return park(deliveryId, paymentId, `applying ${event.type} failed and would fail again: ${(error as Error).message}`, event.type);
      }
      const problem = `applying ${event.type} failed: ${(error as Error).message}`;
      log.error({ deliveryId, paymentId, err: error }, 'IPN stored but applying it failed; reconciliation will re-apply it');
      await markDelivery(pool, deliveryId, { status: 'failed', problem, eventType: event.type, paymentId }).catch((err: unknown) =>
        log.error({ deliveryId, err }, 'could not mark the IPN delivery failed; it stays "received" and is re-applied all the same'),
      );
      ipnProcessed.inc({ outcome: 'stored' });
      return { status: 'stored', deliveryId, paymentId, problem };
    }
  }

  /**
   * Store and apply as one write: the delivery row goes into the statement that writes the transition
   * (engine `alongside`), so a progress status is one statement and no transaction of its own, and a
   * status with jobs commits its delivery row with them. An event that changes nothing, or is refused,
   * writes nothing there; its delivery row is then written on its own. Throws when any of it fails:
   * if the transition committed, the careful path finds its delivery row stored as applied.
   */
  async function storeAndApply(delivery: NewDelivery, mapping: Extract<IpnMapping, { ok: true }>): Promise<IpnOutcome> {
    const { paymentId, event } = mapping;
    const result = await engine.applyEvent(paymentId, event, { source: 'ipn', refuse: orderConflict(paymentId, event.facts.orderId), alongside: deliveryWrittenWith(delivery, event.type) });
    const update: DeliveryUpdate =
      result.outcome === 'refused'
        ? { status: 'parked', problem: result.reason, paymentId, eventType: event.type }
        : { status: result.outcome, eventType: event.type, appliedVersion: result.outcome === 'applied' ? result.version : null, paymentId };
    const as = (deliveryId: string): IpnOutcome =>
      update.status === 'parked'
        ? { status: 'parked', deliveryId, paymentId, problem: update.problem! }
        : { status: update.status as 'applied' | 'duplicate', deliveryId, paymentId, version: result.version };
    let outcome: IpnOutcome;
    // Applied: its delivery row was written with it (null: the same bytes were stored before). Otherwise
    // nothing was written: a body stored before keeps its row (no insert, so not even a sequence value
    // is used up by a re-send), a new one is stored with its outcome.
    let id = result.outcome === 'applied' ? result.alongside! : null;
    // A write that lost already looked these bytes up (null: not stored then; an insert below settles a race).
    const seen = result.outcome === 'duplicate' ? seenDelivery(result.alongsideSeen) : undefined;
    let stored = id === null ? (seen === undefined ? await findByHash(pool, delivery.bodyHash) : (seen ?? undefined)) : undefined;
    if (id === null && !stored) {
      id = await insertDeliveryWithOutcome(pool, delivery, update);
      if (id === null) stored = await findByHash(pool, delivery.bodyHash); // stored meanwhile
    }
    if (id !== null) outcome = as(id);
    else if (!stored) throw new Error('ipn delivery neither inserted nor found');
    else if (result.outcome === 'applied' || stored.status === 'received' || stored.status === 'failed') {
      // Stored by an earlier attempt that failed, is still in flight, or was parked for a cause that is
      // gone now: that row moves on to this outcome (never backwards, see markDelivery).
      await markDelivery(pool, stored.id, update);
      outcome = as(stored.id);
    } else {
      outcome = repeated(stored, mapping); // stored and settled before: nothing new
    }
    if (outcome.status === 'applied' || outcome.status === 'duplicate') settled.set(delivery.bodyHash, { deliveryId: outcome.deliveryId, paymentId });
    if (outcome.status === 'parked') log.warn({ deliveryId: outcome.deliveryId, paymentId, problem: outcome.problem }, 'verified IPN parked: it cannot be applied as it stands; resume with replayDelivery');
    else if (outcome.status === 'applied' || (outcome.status === 'duplicate' && outcome.version !== null)) log.info({ deliveryId: outcome.deliveryId, paymentId, event: event.type, outcome: outcome.status, source: 'ipn' }, 'IPN applied');
    ipnProcessed.inc({ outcome: outcome.status });
    return outcome;
  }

  /** The same bytes again, already applied or parked: nothing new to do. */
  function repeated(stored: { id: string; status: string }, mapping: IpnMapping): IpnOutcome {
    return stored.status === 'parked'
      ? { status: 'parked', deliveryId: stored.id, paymentId: mapping.paymentId, problem: mapping.ok ? 'parked earlier' : mapping.problem }
      : { status: 'duplicate', deliveryId: stored.id, paymentId: mapping.paymentId, version: null };
  }

  return {
    async receive(raw, body) {
      const bodyHash = createHash('sha256').update(raw).digest('hex');
      const settledAs = settled.get(bodyHash);
      if (settledAs) {
        ipnProcessed.inc({ outcome: 'duplicate' });
        return { status: 'duplicate', deliveryId: settledAs.deliveryId, paymentId: settledAs.paymentId, version: null };
      }
      const mapping = mapIpnBody(body);
      const rawBody = raw.toString('utf8');
      const sanitised = () => JSON.stringify(sanitizeJson(body));
      const unsafe = findJsonProblem(body, '');
      const delivery: NewDelivery = {
        bodyHash,
        rawBody,
        // The raw text keeps numbers exact; text jsonb would refuse goes straight to the sanitised copy.
        jsonBody: unsafe ? sanitised() : rawBody,
        sanitisedJsonBody: sanitised,
        paymentId: mapping.paymentId,
        paymentStatus: mapping.ok ? mapping.event.type.slice(3) : null,
      };
      if (mapping.ok && !unsafe) {
        try {
          return await storeAndApply(delivery, mapping);
        } catch (error) {
          log.warn({ paymentId: mapping.paymentId, err: error }, 'storing and applying an IPN in one transaction failed; storing it first, then applying');
        }
      }
      const stored = await storeDelivery(pool, delivery);
      // The same bytes again. If the first one was applied (or parked) there is nothing new; if it was
      // stored but not applied (failed, or still in flight), applying again is safe: applyEvent is idempotent.
      if (!stored.inserted && stored.status !== 'received' && stored.status !== 'failed') {
        ipnProcessed.inc({ outcome: 'duplicate' });
        return repeated(stored, mapping);
      }
      return apply(stored.id, body, 'ipn', mapping);
    },

    async replayDelivery(id, source = 'replay') {
      const row = await getDelivery(pool, id);
      if (!row) throw new Error(`no IPN delivery ${id}`);
      // raw_body, not the jsonb copy: a payment_id above 2^53 is only exact in the original text.
      let body: unknown;
      try {
        body = JSON.parse(row.raw_body);
      } catch {
        return park(row.id, row.payment_id, 'the stored raw body is not valid JSON');
      }
      return apply(row.id, body, source);
    },
  };
}

// Applying failed in a way a retry repeats: Postgres refused a value of this body (isDataError), or the
// code threw on it (TypeError, RangeError). A lost connection, a deadlock or a raised exception of the
// moment is not such a failure: that delivery stays "failed" and reconciliation tries again.
function alwaysFails(error: unknown): boolean {
  if (isDatabaseUnavailable(error)) return false;
  return isDataError(error) || error instanceof TypeError || error instanceof RangeError;
}
